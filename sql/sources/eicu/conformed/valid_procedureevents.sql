-- valid_procedureevents: eICU dialysis treatments in the shape of MIMIC-IV icu/procedureevents
-- (the RRT outcome of the shared staging stg_rrt_events).
-- Grain: one row per valid_eicu_treatment row whose treatmentstring matches a
--   concept_eicu_rrt pattern (active sessions only); the first matching pattern gives the item.
-- Units: starttime = endtime (timestamp): a treatment row is a point; itemid = the
--   concepts.toml [rrt] procedure item of the pattern.
-- Source: valid_eicu_treatment, stg_eicu__patient, concept_eicu_rrt.
with

treatments as (
    select * from valid_eicu_treatment
),

stays as (
    select * from stg_eicu__patient
),

rrt_pattern as (
    select * from concept_eicu_rrt
),

matched as (
    select
        t.source_row,
        t.patientunitstayid,
        t.treatmentoffset,
        r.itemid,
        row_number() over (partition by t.source_row order by r.priority) as match_rank
    from treatments as t
    inner join rrt_pattern as r on starts_with(lower(t.treatmentstring), r.pattern)
),

final as (
    select
        m.source_row,
        s.subject_id,
        s.hadm_id,
        s.stay_id,
        cast(null as bigint) as caregiver_id,
        s.unit_admit_time + to_minutes(m.treatmentoffset) as starttime,
        s.unit_admit_time + to_minutes(m.treatmentoffset) as endtime,
        cast(null as timestamp) as storetime,
        m.itemid,
        cast(null as double) as value,
        cast(null as varchar) as valueuom,
        cast(null as varchar) as location,
        cast(null as varchar) as locationcategory,
        cast(null as bigint) as orderid,
        cast(null as bigint) as linkorderid,
        cast(null as varchar) as ordercategoryname,
        cast(null as varchar) as ordercategorydescription,
        cast(null as double) as patientweight,
        cast(null as varchar) as statusdescription
    from matched as m
    inner join stays as s on s.stay_id = m.patientunitstayid
    where m.match_rank = 1
)

select * from final
