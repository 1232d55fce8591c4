-- int_patient_outcomes: death time and end of follow-up of each patient.
-- Grain: one row per valid_patients row.
-- Definition: death_time = the EARLIEST death record of the patient: the earliest admission
--   deathtime over all admissions (a patient can have two: an organ-donor account is a second
--   hadm_id opened after death, whose deathtime is later; the MIMIC maintainers advise the
--   earliest, MIT-LCP/mimic-iv issue #71), or patients.dod when its date is before that
--   deathtime's date (dod is a DATE: the same day gives no order, and the deathtime is the
--   more precise record). dod is taken as 00:00 of its day but never earlier than the dischtime
--   of the last admission starting before it (a patient discharged alive on the day of death
--   died after discharge). followup_end_time = death_time if dead, else the last dischtime +
--   outcomes_dod_coverage_days (dod covers one year after the last discharge).
-- Units: timestamps.
-- Source: valid_patients, valid_admissions, study_param.
with

patients as (
    select * from valid_patients
),

admissions as (
    select * from valid_admissions
),

params as (
    select outcomes_dod_coverage_days from study_param
),

admission_summary as (
    select
        subject_id,
        -- earliest, not latest: see the header (organ-donor accounts)
        min(deathtime) as in_hospital_death_time,
        max(dischtime) as last_dischtime
    from admissions
    group by subject_id
),

dod as (
    select subject_id, cast(dod as timestamp) as dod_time
    from patients
    where dod is not null
),

discharge_before_dod as (
    select
        d.subject_id,
        max(a.dischtime) as dischtime_before_dod
    from dod as d
    inner join admissions as a
        on a.subject_id = d.subject_id
        and a.admittime < d.dod_time
    group by d.subject_id
),

death as (
    select
        p.subject_id,
        case
            -- dod a calendar day (or more) before the first in-hospital deathtime: the earlier
            -- record wins; greatest ignores nulls: no earlier admission leaves dod as it is
            when s.in_hospital_death_time is null
                or d.dod_time < cast(cast(s.in_hospital_death_time as date) as timestamp)
                then greatest(d.dod_time, b.dischtime_before_dod)
            else s.in_hospital_death_time
        end as death_time,
        s.last_dischtime
    from patients as p
    left join admission_summary as s on s.subject_id = p.subject_id
    left join dod as d on d.subject_id = p.subject_id
    left join discharge_before_dod as b on b.subject_id = p.subject_id
),

final as (
    select
        x.subject_id,
        x.death_time,
        x.last_dischtime,
        case
            when x.death_time is not null then x.death_time
            else x.last_dischtime + to_days(cast(pa.outcomes_dod_coverage_days as integer))
        end as followup_end_time
    from death as x
    cross join params as pa
)

select * from final
