-- valid_chartevents: eICU cuff mean arterial pressure in the shape of MIMIC-IV icu/chartevents.
-- Grain: one row per valid_eicu_vitalaperiodic row with a noninvasivemean (empty when the source
--   has no vitalAperiodic: then MAP-based results are "not assessable").
-- Units: valuenum (mmHg); itemid = concept_eicu_param map_itemid (concepts.toml
--   [measurements.map]'s non-invasive MAP item); charttime (timestamp).
-- Source: valid_eicu_vitalaperiodic, stg_eicu__patient, concept_eicu_param.
with

vitals as (
    select * from valid_eicu_vitalaperiodic
),

stays as (
    select * from stg_eicu__patient
),

params as (
    select * from concept_eicu_param
),

final as (
    select
        v.source_row,
        s.subject_id,
        s.hadm_id,
        s.stay_id,
        cast(null as bigint) as caregiver_id,
        s.unit_admit_time + to_minutes(v.observationoffset) as charttime,
        cast(null as timestamp) as storetime,
        p.map_itemid as itemid,
        cast(v.noninvasivemean as varchar) as value,
        v.noninvasivemean as valuenum,
        'mmHg' as valueuom,
        cast(null as bigint) as warning
    from vitals as v
    inner join stays as s on s.stay_id = v.patientunitstayid
    cross join params as p
    where v.noninvasivemean is not null
)

select * from final
