-- mart_audit_vp_missed: audit rule vp_missed - NE above the "delayed" doses (> 0.5 mcg/kg/min or
-- > 35 mcg/min, [classification]) for more than audit_vp_missed_after_hours without vasopressin.
-- Grain: one row per cohort stay (mart_cohort).
-- Definition: for each run of NE above those doses (int_audit_high_dose_runs, kind
--   'ne_above_delayed'), the time from run start until vasopressin is first infusing in the run
--   (0 if it already runs at the run start; the whole run if it never does). The stay fails if
--   the longest such time exceeds the limit.
-- Result: not_applicable (NE never above those doses), pass, fail.
-- Units: hours.
-- Source: mart_cohort, int_audit_high_dose_runs, int_audit_episode_segments, study_param.
with

cohort as (
    select * from mart_cohort
),

runs as (
    select * from int_audit_high_dose_runs where kind = 'ne_above_delayed'
),

segments as (
    select * from int_audit_episode_segments
),

params as (
    select * from study_param
),

vp_in_run as (
    select
        r.stay_id,
        r.run_seq,
        min(greatest(s.segment_start_time, r.run_start_time)) as vp_first_time_in_run
    from runs as r
    inner join segments as s
        on s.stay_id = r.stay_id
        and s.segment_start_time < r.run_end_time
        and s.segment_end_time > r.run_start_time
    where s.vp_rate_units_min > 0
    group by r.stay_id, r.run_seq
),

run_wait as (
    select
        r.stay_id,
        date_diff('second', r.run_start_time, coalesce(v.vp_first_time_in_run, r.run_end_time)) / 3600.0
            as hours_without_vp
    from runs as r
    left join vp_in_run as v on v.stay_id = r.stay_id and v.run_seq = r.run_seq
),

per_stay as (
    select stay_id, max(hours_without_vp) as max_hours_without_vp
    from run_wait
    group by stay_id
),

final as (
    select
        c.stay_id,
        'vp_missed' as rule,
        case
            when w.stay_id is null then 'not_applicable'
            when w.max_hours_without_vp > p.audit_vp_missed_after_hours then 'fail'
            else 'pass'
        end as result,
        case
            when w.stay_id is null then printf('NE never above %.2f mcg/kg/min or %.0f mcg/min',
                p.classification_timing_delayed_above_ne_mcg_kg_min,
                p.classification_timing_delayed_above_ne_mcg_min)
            else printf('NE above %.2f mcg/kg/min or %.0f mcg/min for up to %.1f h without vasopressin (limit %.1f h)',
                p.classification_timing_delayed_above_ne_mcg_kg_min,
                p.classification_timing_delayed_above_ne_mcg_min,
                w.max_hours_without_vp, p.audit_vp_missed_after_hours)
        end as detail
    from cohort as c
    cross join params as p
    left join per_stay as w on w.stay_id = c.stay_id
)

select * from final
