-- valid_admissions: eICU hospital stays in the shape of MIMIC-IV hosp/admissions.
-- Grain: one row per patienthealthsystemstayid (hadm_id).
-- Units: admittime/dischtime (timestamp); deathtime = dischtime when the hospital discharge
--   status is 'Expired' (eICU records death only at hospital discharge); hospital_expire_flag.
-- Source: stg_eicu__patient.
with

stays as (
    select * from stg_eicu__patient
),

final as (
    select
        cast(0 as bigint) as source_row,
        min(subject_id) as subject_id,
        hadm_id,
        min(hospital_admit_time) as admittime,
        max(hospital_discharge_time) as dischtime,
        case when bool_or(is_expired_in_hospital) then max(hospital_discharge_time) end as deathtime,
        cast(null as varchar) as admission_type,
        cast(null as varchar) as admission_location,
        cast(null as varchar) as discharge_location,
        cast(null as varchar) as insurance,
        cast(null as varchar) as race,
        case when bool_or(is_expired_in_hospital) then 1 else 0 end as hospital_expire_flag
    from stays
    group by hadm_id
)

select * from final
