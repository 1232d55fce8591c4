-- mart_attrition: the cohort flow (one row per filter, in order), for the flow diagram.
-- Grain: one row per attrition step (6 rows). A switched-off filter still has its row, says
--   "not applied" and excludes 0. Steps 1-5 make the analysis cohort (analysis = 'all'); step
--   6 applies to the RRT analyses only (analysis = 'rrt'): cohort stays without chronic
--   dialysis / ESRD (int_cohort_eligibility.has_chronic_dialysis; concepts.toml
--   [chronic_dialysis]), for whom RRT after index is not a new outcome.
-- Units: n_stays, n_patients, n_excluded (counts of ICU stays / distinct patients).
-- Source: int_cohort_eligibility, study_param.
with

eligibility as (
    select * from int_cohort_eligibility
),

params as (
    select * from study_param
),

counts as (
    select
        count(*) as n_all,
        count(distinct subject_id) as p_all,
        count(*) filter (where passes_adult) as n_adult,
        count(distinct subject_id) filter (where passes_adult) as p_adult,
        count(*) filter (where passes_sepsis) as n_sepsis,
        count(distinct subject_id) filter (where passes_sepsis) as p_sepsis,
        count(*) filter (where passes_ne) as n_ne,
        count(distinct subject_id) filter (where passes_ne) as p_ne,
        count(*) filter (where is_in_cohort) as n_cohort,
        count(distinct subject_id) filter (where is_in_cohort) as p_cohort,
        count(*) filter (where is_in_cohort and not has_chronic_dialysis) as n_rrt,
        count(distinct subject_id) filter (where is_in_cohort and not has_chronic_dialysis) as p_rrt
    from eligibility
),

steps as (
    select 1 as step, 'all_icu_stays' as step_name, 'all' as analysis, true as is_applied,
        'All ICU stays' as description, n_all as n_stays, p_all as n_patients
    from counts
    union all
    select 2, 'adult', 'all', true,
        'Adults: age at admission >= ' || cast(pa.cohort_min_age_years as varchar) || ' years',
        n_adult, p_adult
    from counts cross join params as pa
    union all
    select 3, 'sepsis_diagnosis', 'all', pa.cohort_require_sepsis_diagnosis,
        case
            when pa.cohort_require_sepsis_diagnosis then 'Sepsis ICD code on the admission'
            else 'Sepsis ICD code on the admission: not applied (cohort.require_sepsis_diagnosis = false)'
        end,
        n_sepsis, p_sepsis
    from counts cross join params as pa
    union all
    select 4, 'received_ne', 'all', true,
        'Norepinephrine infused in the ICU stay', n_ne, p_ne
    from counts
    union all
    select 5, 'first_stay_per_patient', 'all', pa.cohort_first_stay_only,
        case
            when pa.cohort_first_stay_only then 'First qualifying ICU stay per patient (by intime)'
            else 'First qualifying ICU stay per patient: not applied (cohort.first_stay_only = false)'
        end,
        n_cohort, p_cohort
    from counts cross join params as pa
    union all
    select 6, 'rrt_no_chronic_dialysis', 'rrt', true,
        'RRT analyses only: no chronic dialysis / ESRD code up to the index admission', n_rrt, p_rrt
    from counts
),

final as (
    select
        step,
        step_name,
        analysis,
        description,
        is_applied,
        n_stays,
        n_patients,
        coalesce(lag(n_stays) over (order by step) - n_stays, 0) as n_excluded
    from steps
)

select * from final order by step
