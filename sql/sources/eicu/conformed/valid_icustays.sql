-- valid_icustays: eICU unit stays in the shape of MIMIC-IV icu/icustays (the relation the shared
-- intermediate SQL reads).
-- Grain: one row per eICU patientunitstayid (stay_id); hadm_id = patienthealthsystemstayid.
-- Units: intime/outtime (timestamp, stg_eicu__patient); los (days).
-- Source: stg_eicu__patient.
with

stays as (
    select * from stg_eicu__patient
),

final as (
    select
        cast(0 as bigint) as source_row,
        subject_id,
        hadm_id,
        stay_id,
        unittype as first_careunit,
        unittype as last_careunit,
        unit_admit_time as intime,
        unit_discharge_time as outtime,
        date_diff('second', unit_admit_time, unit_discharge_time) / 86400.0 as los
    from stays
)

select * from final
