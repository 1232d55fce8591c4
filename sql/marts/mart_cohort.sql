-- mart_cohort: the analysis cohort.
-- Grain: one row per ICU stay in the cohort (int_cohort_eligibility.is_in_cohort; with
--   cohort_first_stay_only = true, one row per patient).
-- Columns: ids and demographics; index episode (index_time = ne_start_time, episode bounds);
--   exposure and the NE dose at VP start with its VASST stratum and timing class (null unless
--   exposure = 'vp_added'); outcomes from index_time; covariates before the decision time;
--   has_* flags telling a missing value from a missing source table.
-- Units: in the column names (_mcg_kg_min, _mcg_min, _mmol_l, _mmhg, _mg_dl, _kg, _hours,
--   _days, _years); *_time are timestamps.
-- Source: int_cohort_eligibility, int_index_exposure, int_vp_timing, int_drug_rate_intervals,
--   int_patient_outcomes, stg_rrt_events, stg_labevents_lactate, stg_labevents_creatinine,
--   stg_chartevents_map, source_table, study_param.
with

eligibility as (
    select * from int_cohort_eligibility
),

exposure as (
    select * from int_index_exposure
),

vp_timing as (
    select * from int_vp_timing
),

rate_intervals as (
    select * from int_drug_rate_intervals
),

outcomes as (
    select * from int_patient_outcomes
),

rrt_events as (
    select * from stg_rrt_events
),

lactate as (
    select * from stg_labevents_lactate
),

creatinine as (
    select * from stg_labevents_creatinine
),

map as (
    select * from stg_chartevents_map
),

sources as (
    select * from source_table
),

params as (
    select * from study_param
),

cohort_stays as (
    select
        el.subject_id,
        el.hadm_id,
        el.stay_id,
        el.age_years,
        el.gender,
        el.anchor_year_group,
        el.first_careunit,
        el.intime,
        el.outtime,
        ex.index_time,
        ex.ne_start_time,
        ex.episode_start_time,
        ex.episode_end_time,
        ex.exposure,
        ex.vp_start_time,
        el.has_chronic_dialysis
    from eligibility as el
    inner join exposure as ex on ex.stay_id = el.stay_id
    where el.is_in_cohort
),

ne_max as (
    -- highest NE rate in force during the index episode
    select
        c.stay_id,
        max(i.rate_mcg_kg_min) as ne_max_rate_mcg_kg_min,
        max(i.rate_mcg_min) as ne_max_rate_mcg_min
    from cohort_stays as c
    inner join rate_intervals as i
        on i.stay_id = c.stay_id
        and i.drug = 'norepinephrine'
        and i.starttime < c.episode_end_time
        and i.endtime > c.episode_start_time
    group by c.stay_id
),

rrt as (
    select
        c.stay_id,
        bool_or(r.event_time < c.index_time) as rrt_before_index,
        bool_or(r.event_time >= c.index_time) as rrt_after_index,
        min(r.event_time) filter (where r.event_time >= c.index_time) as rrt_first_time_after_index
    from cohort_stays as c
    -- only an active session is RRT; a charted catheter or circuit pressure is not
    -- (mimic-code treatment/rrt.sql dialysis_active)
    inner join rrt_events as r on r.stay_id = c.stay_id and r.is_active
    group by c.stay_id
),

lactate_at_index as (
    -- last lactate in [index + grace - lookback, index + grace]; same-time ties: the higher value
    select
        c.stay_id,
        l.lactate_mmol_l as lactate_at_index_mmol_l
    from cohort_stays as c
    cross join params as p
    inner join lactate as l
        on l.subject_id = c.subject_id
        and l.charttime <= c.index_time + to_hours(p.cohort_lactate_index_grace_hours)
        and l.charttime >= c.index_time + to_hours(p.cohort_lactate_index_grace_hours)
            - to_hours(p.cohort_lactate_lookback_hours)
    qualify row_number() over (
        partition by c.stay_id order by l.charttime desc, l.lactate_mmol_l desc
    ) = 1
),

lactate_before_vp as (
    -- vp_added only: last lactate in [vp_start - lookback, vp_start]. For ne_only and
    -- vp_before_ne there is no VP decision time, so the value is null (use
    -- lactate_at_index_mmol_l to compare exposure groups)
    select
        c.stay_id,
        l.lactate_mmol_l as lactate_before_vp_mmol_l
    from cohort_stays as c
    cross join params as p
    inner join lactate as l
        on l.subject_id = c.subject_id
        and l.charttime <= c.vp_start_time
        and l.charttime >= c.vp_start_time - to_hours(p.cohort_lactate_lookback_hours)
    qualify row_number() over (
        partition by c.stay_id order by l.charttime desc, l.lactate_mmol_l desc
    ) = 1
),

map_before_vp as (
    -- vp_added only: last MAP of the stay in [vp_start - map_lookback, vp_start]
    select
        c.stay_id,
        m.map_mmhg as map_before_vp_mmhg
    from cohort_stays as c
    cross join params as p
    inner join map as m
        on m.stay_id = c.stay_id
        and m.charttime <= c.vp_start_time
        and m.charttime >= c.vp_start_time - to_hours(p.cohort_map_lookback_hours)
    qualify row_number() over (
        partition by c.stay_id order by m.charttime desc, m.map_mmhg desc
    ) = 1
),

creatinine_baseline as (
    -- lowest creatinine in [index - lookback days, index] (KDIGO baseline)
    select
        c.stay_id,
        min(k.creatinine_mg_dl) as creatinine_baseline_mg_dl
    from cohort_stays as c
    cross join params as p
    inner join creatinine as k
        on k.subject_id = c.subject_id
        and k.charttime <= c.index_time
        and k.charttime >= c.index_time - to_days(cast(p.cohort_creatinine_baseline_lookback_days as integer))
    group by c.stay_id
),

source_flags as (
    select
        coalesce(bool_or(is_available) filter (where table_name = 'labevents'), false) as has_lactate_source,
        -- MAP comes from chartevents only (the MIMIC-IV demo has none)
        coalesce(bool_or(is_available) filter (where table_name = 'chartevents'), false) as has_map_source,
        coalesce(bool_or(is_available) filter (where table_name = 'chartevents'), false) as has_chartevents
    from sources
),

final as (
    select
        c.subject_id,
        c.hadm_id,
        c.stay_id,
        c.age_years,
        c.gender,
        c.anchor_year_group,
        c.first_careunit,
        c.intime,
        c.outtime,
        c.index_time,
        c.ne_start_time,
        c.episode_start_time,
        c.episode_end_time,
        c.exposure,
        c.vp_start_time,
        v.hours_ne_to_vp,
        v.ne_rate_at_vp_mcg_kg_min,
        v.ne_rate_at_vp_mcg_min,
        v.nee_at_vp_mcg_kg_min,
        v.weight_kg,
        v.vasst_stratum,
        v.timing_class,
        nm.ne_max_rate_mcg_kg_min,
        nm.ne_max_rate_mcg_min,
        o.death_time,
        o.followup_end_time,
        date_diff('second', c.index_time, o.death_time) / 86400.0 as days_to_death,
        case
            when o.death_time <= c.index_time + to_days(cast(p.outcomes_short_term_days as integer)) then true
            when o.followup_end_time >= c.index_time + to_days(cast(p.outcomes_short_term_days as integer)) then false
        end as death_28d,
        case
            when o.death_time <= c.index_time + to_days(cast(p.outcomes_long_term_days as integer)) then true
            when o.followup_end_time >= c.index_time + to_days(cast(p.outcomes_long_term_days as integer)) then false
        end as death_90d,
        -- ESRD / maintenance dialysis coded up to the index admission: RRT analyses exclude
        -- these patients (mart_attrition step rrt_no_chronic_dialysis)
        c.has_chronic_dialysis,
        coalesce(r.rrt_before_index, false) as rrt_before_index,
        coalesce(r.rrt_after_index, false) as rrt_after_index,
        r.rrt_first_time_after_index,
        lv.lactate_before_vp_mmol_l,
        li.lactate_at_index_mmol_l,
        mv.map_before_vp_mmhg,
        cb.creatinine_baseline_mg_dl,
        sf.has_lactate_source,
        sf.has_map_source,
        sf.has_chartevents
    from cohort_stays as c
    cross join params as p
    cross join source_flags as sf
    left join vp_timing as v on v.stay_id = c.stay_id
    left join ne_max as nm on nm.stay_id = c.stay_id
    left join outcomes as o on o.subject_id = c.subject_id
    left join rrt as r on r.stay_id = c.stay_id
    left join lactate_before_vp as lv on lv.stay_id = c.stay_id
    left join lactate_at_index as li on li.stay_id = c.stay_id
    left join map_before_vp as mv on mv.stay_id = c.stay_id
    left join creatinine_baseline as cb on cb.stay_id = c.stay_id
)

select * from final order by stay_id
