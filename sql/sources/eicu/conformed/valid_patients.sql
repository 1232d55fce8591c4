-- valid_patients: eICU patients in the shape of MIMIC-IV hosp/patients.
-- Grain: one row per uniquepid (subject_id), from its first unit stay (earliest hospital year,
--   then unit admission, then stay id).
-- Units: anchor_age (years, at that stay; '> 89' read as config/eicu.toml age_above_89_years);
--   anchor_year = the stay's hospitaldischargeyear (the year its times are anchored in);
--   dod is null: eICU knows no death after hospital discharge (config/eicu.toml [outcome]).
-- Source: stg_eicu__patient.
with

stays as (
    select * from stg_eicu__patient
),

ranked as (
    select
        subject_id,
        gender,
        age_years,
        hospitaldischargeyear,
        row_number() over (
            partition by subject_id order by hospitaldischargeyear, unit_admit_time, stay_id
        ) as stay_rank
    from stays
),

final as (
    select
        cast(0 as bigint) as source_row,
        subject_id,
        gender,
        age_years as anchor_age,
        hospitaldischargeyear as anchor_year,
        cast(hospitaldischargeyear as varchar) as anchor_year_group,
        cast(null as date) as dod
    from ranked
    where stay_rank = 1
)

select * from final
