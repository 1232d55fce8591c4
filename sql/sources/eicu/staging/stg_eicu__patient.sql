-- stg_eicu__patient: eICU unit stays with wall-clock times and integer patient ids.
-- Grain: one row per valid_eicu_patient row (patientunitstayid).
-- Units: times (timestamp) made from offsets (minutes): the hospital admission is put at
--   1 January of hospitaldischargeyear (eICU has no dates; config/eicu.toml [time]), the unit
--   admission hospitaladmitoffset minutes later (the offset is negative: minus it), the unit
--   and hospital discharges at their offsets from the unit admission; age_years ('> 89' ->
--   concept_eicu_param age_above_89_years); subject_id numbers uniquepid in sorted order.
-- Source: valid_eicu_patient, concept_eicu_param.
with

patients as (
    select * from valid_eicu_patient
),

params as (
    select * from concept_eicu_param
),

anchored as (
    select
        p.*,
        cast(cast(p.hospitaldischargeyear as varchar) || '-01-01 00:00:00' as timestamp) as hospital_admit_time
    from patients as p
),

final as (
    select
        a.patientunitstayid as stay_id,
        a.patienthealthsystemstayid as hadm_id,
        dense_rank() over (order by a.uniquepid) as subject_id,
        a.uniquepid,
        a.hospitalid,
        a.gender,
        case
            when contains(a.age, '>') then pa.age_above_89_years
            else cast(trim(a.age) as bigint)
        end as age_years,
        a.hospitaldischargeyear,
        a.unittype,
        a.apacheadmissiondx,
        a.admissionweight,
        a.hospital_admit_time,
        a.hospital_admit_time - to_minutes(a.hospitaladmitoffset) as unit_admit_time,
        a.hospital_admit_time - to_minutes(a.hospitaladmitoffset) + to_minutes(a.unitdischargeoffset)
            as unit_discharge_time,
        a.hospital_admit_time - to_minutes(a.hospitaladmitoffset) + to_minutes(a.hospitaldischargeoffset)
            as hospital_discharge_time,
        coalesce(a.hospitaldischargestatus = pa.expired_status, false) as is_expired_in_hospital
    from anchored as a
    cross join params as pa
)

select * from final
