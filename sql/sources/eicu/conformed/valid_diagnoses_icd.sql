-- valid_diagnoses_icd: eICU diagnoses as ICD codes, in the shape of MIMIC-IV hosp/diagnoses_icd,
-- so concepts.toml [sepsis] and [chronic_dialysis] code lists apply unchanged.
-- Grain: one row per code listed in a valid_eicu_diagnosis icd9code ('038.9, A41.9' -> two
--   rows), plus one row (code concept_eicu_param sepsis_equivalent_icd10, version 10) per unit
--   stay whose diagnosisstring or apacheadmissiondx matches a concept_eicu_sepsis_text pattern.
-- icd_version: 9 when the code starts with a digit, with 'V', or is an E-code of 3 digits
--   (E849.7); 10 otherwise (eICU lists the ICD-9 and the ICD-10 code of a diagnosis together).
-- Source: valid_eicu_diagnosis, stg_eicu__patient, concept_eicu_sepsis_text, concept_eicu_param.
with

diagnoses as (
    select * from valid_eicu_diagnosis
),

stays as (
    select * from stg_eicu__patient
),

sepsis_text as (
    select * from concept_eicu_sepsis_text
),

params as (
    select * from concept_eicu_param
),

listed as (
    select
        patientunitstayid,
        unnest(string_split(icd9code, ',')) as code
    from diagnoses
    where icd9code is not null
),

coded as (
    select
        s.subject_id,
        s.hadm_id,
        upper(trim(l.code)) as icd_code
    from listed as l
    inner join stays as s on s.stay_id = l.patientunitstayid
    where trim(l.code) <> ''
),

text_sepsis as (
    select distinct s.subject_id, s.hadm_id
    from stays as s
    left join diagnoses as d on d.patientunitstayid = s.stay_id
    inner join sepsis_text as t
        on (t.kind = 'diagnosisstring' and contains(lower(d.diagnosisstring), t.pattern))
        or (t.kind = 'apacheadmissiondx' and starts_with(lower(s.apacheadmissiondx), t.pattern))
),

final as (
    select
        cast(0 as bigint) as source_row,
        subject_id,
        hadm_id,
        cast(null as bigint) as seq_num,
        icd_code,
        cast(case
            when substr(icd_code, 1, 1) between '0' and '9' then 9
            when starts_with(icd_code, 'V') then 9
            when regexp_matches(icd_code, '^E[0-9]{3}') then 9
            else 10
        end as bigint) as icd_version
    from coded
    union all
    select
        cast(0 as bigint) as source_row,
        t.subject_id,
        t.hadm_id,
        cast(null as bigint) as seq_num,
        p.sepsis_equivalent_icd10 as icd_code,
        cast(10 as bigint) as icd_version
    from text_sepsis as t
    cross join params as p
)

select * from final
