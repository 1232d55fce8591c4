-- stg_labevents_lactate: lactate results.
-- Grain: one row per valid_labevents row of a lactate item with a numeric value.
-- Units: lactate_mmol_l (mmol/L).
-- Source: valid_labevents, concept_measurement (concepts.toml [measurements.lactate]).
with

labevents as (
    select * from valid_labevents
),

lactate_item as (
    select itemid
    from concept_measurement
    where concept = 'lactate' and source_table = 'labevents'
),

final as (
    select
        l.subject_id,
        -- hadm_id is null for labs drawn outside an admission: join on subject_id and time
        l.hadm_id,
        l.itemid,
        l.charttime,
        l.valuenum as lactate_mmol_l
    from labevents as l
    inner join lactate_item as i on i.itemid = l.itemid
    where l.valuenum is not null
)

select * from final
