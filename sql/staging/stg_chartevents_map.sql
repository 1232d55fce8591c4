-- stg_chartevents_map: mean arterial pressure measurements.
-- Grain: one row per valid_chartevents row of a MAP item (invasive or non-invasive) with a value.
-- Units: map_mmhg (mmHg).
-- Source: valid_chartevents (empty when the source has no chartevents, e.g. the MIMIC-IV demo),
--   concept_measurement (concepts.toml [measurements.map]).
with

chartevents as (
    select * from valid_chartevents
),

map_item as (
    select itemid
    from concept_measurement
    where concept = 'map' and source_table = 'chartevents'
),

final as (
    select
        c.subject_id,
        c.hadm_id,
        c.stay_id,
        c.itemid,
        c.charttime,
        c.valuenum as map_mmhg
    from chartevents as c
    inner join map_item as m on m.itemid = c.itemid
    -- text-only rows (e.g. 'Not done') have no valuenum
    where c.valuenum is not null
)

select * from final
