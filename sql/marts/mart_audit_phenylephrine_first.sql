-- mart_audit_phenylephrine_first: audit rule phenylephrine_first - phenylephrine is not started
-- before NE in the index episode (SSC 2021: NE first line).
-- Grain: one row per cohort stay (mart_cohort).
-- Result: fail (phenylephrine infusing in the index episode before ne_start_time), pass
--   otherwise (no phenylephrine, or started with or after NE). Every cohort stay started NE, so
--   the rule always applies.
-- Source: mart_cohort, int_audit_episode_segments.
with

cohort as (
    select * from mart_cohort
),

segments as (
    select * from int_audit_episode_segments
),

first_phenylephrine as (
    select stay_id, min(segment_start_time) as phenylephrine_start_time
    from segments
    where is_phenylephrine_running
    group by stay_id
),

final as (
    select
        c.stay_id,
        'phenylephrine_first' as rule,
        case
            when f.phenylephrine_start_time < c.ne_start_time then 'fail'
            else 'pass'
        end as result,
        case
            when f.stay_id is null then 'no phenylephrine in the index episode'
            when f.phenylephrine_start_time < c.ne_start_time then printf(
                'phenylephrine started %.1f h before NE',
                date_diff('second', f.phenylephrine_start_time, c.ne_start_time) / 3600.0)
            else printf('phenylephrine started %.1f h after NE',
                date_diff('second', c.ne_start_time, f.phenylephrine_start_time) / 3600.0)
        end as detail
    from cohort as c
    left join first_phenylephrine as f on f.stay_id = c.stay_id
)

select * from final
