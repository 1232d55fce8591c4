-- int_cohort_eligibility: every ICU stay with the cohort criteria it meets, in attrition order.
-- Grain: one row per valid_icustays row.
-- Criteria: is_adult (age = anchor_age + year(admittime) - anchor_year >= cohort_min_age_years,
--   the MIMIC age at admission), has_sepsis_diagnosis (an ICD code of the stay's admission
--   starts with a concept_sepsis_icd prefix), has_ne (an infusing NE row in the stay).
--   passes_* flags apply the filters cumulatively, honouring the switches
--   cohort_require_sepsis_diagnosis and cohort_first_stay_only; is_in_cohort is the last one.
--   has_chronic_dialysis (not a cohort filter: the RRT analyses exclude these stays, see
--   mart_attrition) = a concept_chronic_dialysis_icd code (ESRD / maintenance dialysis) on any
--   admission of the patient admitted up to and including the stay's own admission. The own
--   admission counts because diagnoses are coded at discharge and MIMIC-IV has no
--   present-on-admission flag: an ESRD code there (N18.6, 585.6) means ESRD that existed
--   before, since ESRD needs months of kidney failure. Later admissions do not count (that
--   would use the future). Limitation: Z99.2/V45.11 on the index admission can also mark a
--   patient discharged on dialysis after AKI in that stay.
-- Units: age_years (years).
-- Source: valid_icustays, valid_admissions, valid_patients, valid_diagnoses_icd,
--   concept_sepsis_icd, concept_chronic_dialysis_icd, int_index_episodes, study_param.
with

icustays as (
    select * from valid_icustays
),

admissions as (
    select * from valid_admissions
),

patients as (
    select * from valid_patients
),

diagnoses as (
    select * from valid_diagnoses_icd
),

sepsis_icd as (
    select * from concept_sepsis_icd
),

chronic_dialysis_icd as (
    select * from concept_chronic_dialysis_icd
),

index_episodes as (
    select * from int_index_episodes
),

params as (
    select * from study_param
),

sepsis_admissions as (
    select distinct d.hadm_id
    from diagnoses as d
    inner join sepsis_icd as s
        on s.icd_version = d.icd_version
        -- MIMIC stores ICD codes without dots; strip them anyway for other extracts
        and starts_with(upper(replace(trim(d.icd_code), '.', '')), s.prefix)
),

chronic_dialysis_admissions as (
    select distinct d.subject_id, a.admittime
    from diagnoses as d
    inner join chronic_dialysis_icd as c
        on c.icd_version = d.icd_version
        and starts_with(upper(replace(trim(d.icd_code), '.', '')), c.prefix)
    inner join admissions as a on a.hadm_id = d.hadm_id
),

chronic_dialysis_stays as (
    -- a code on the stay's own admission or on an earlier one (never a later one)
    select distinct i.stay_id
    from icustays as i
    inner join admissions as a on a.hadm_id = i.hadm_id
    inner join chronic_dialysis_admissions as c
        on c.subject_id = i.subject_id
        and c.admittime <= a.admittime
),

stays as (
    select
        i.stay_id,
        i.subject_id,
        i.hadm_id,
        i.first_careunit,
        i.intime,
        i.outtime,
        p.gender,
        p.anchor_year_group,
        -- MIMIC shifts dates per patient; anchor_age is the age in anchor_year
        p.anchor_age + year(a.admittime) - p.anchor_year as age_years,
        s.hadm_id is not null as has_sepsis_diagnosis,
        e.stay_id is not null as has_ne,
        cd.stay_id is not null as has_chronic_dialysis
    from icustays as i
    left join admissions as a on a.hadm_id = i.hadm_id
    left join patients as p on p.subject_id = i.subject_id
    left join sepsis_admissions as s on s.hadm_id = i.hadm_id
    left join index_episodes as e on e.stay_id = i.stay_id
    left join chronic_dialysis_stays as cd on cd.stay_id = i.stay_id
),

cumulative as (
    select
        st.*,
        coalesce(st.age_years >= pa.cohort_min_age_years, false) as is_adult,
        coalesce(st.age_years >= pa.cohort_min_age_years, false) as passes_adult,
        coalesce(st.age_years >= pa.cohort_min_age_years, false)
            and (st.has_sepsis_diagnosis or not pa.cohort_require_sepsis_diagnosis) as passes_sepsis,
        coalesce(st.age_years >= pa.cohort_min_age_years, false)
            and (st.has_sepsis_diagnosis or not pa.cohort_require_sepsis_diagnosis)
            and st.has_ne as passes_ne
    from stays as st
    cross join params as pa
),

ranked as (
    select
        *,
        -- first qualifying stay of the patient by intime (stay_id breaks ties)
        case
            when passes_ne then row_number() over (
                partition by subject_id, passes_ne order by intime, stay_id
            )
        end as qualifying_stay_rank
    from cumulative
),

final as (
    select
        r.*,
        r.passes_ne and (r.qualifying_stay_rank = 1 or not pa.cohort_first_stay_only) as is_in_cohort
    from ranked as r
    cross join params as pa
)

select * from final
