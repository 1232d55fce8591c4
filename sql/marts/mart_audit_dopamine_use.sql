-- mart_audit_dopamine_use: audit rule dopamine_use - no dopamine infused as a vasopressor in the
-- index episode (SSC 2021: NE first line rather than dopamine).
-- Grain: one row per cohort stay (mart_cohort).
-- Result: pass (no dopamine), fail (dopamine infusing at any time of the index episode). Every
--   cohort stay received vasopressors, so the rule always applies.
-- Units: hours of dopamine.
-- Source: mart_cohort, int_audit_episode_segments.
with

cohort as (
    select * from mart_cohort
),

segments as (
    select * from int_audit_episode_segments
),

dopamine as (
    select stay_id, sum(segment_hours) as dopamine_hours
    from segments
    where is_dopamine_running
    group by stay_id
),

final as (
    select
        c.stay_id,
        'dopamine_use' as rule,
        case when d.stay_id is null then 'pass' else 'fail' end as result,
        case
            when d.stay_id is null then 'no dopamine in the index episode'
            else printf('dopamine infused for %.1f h in the index episode', d.dopamine_hours)
        end as detail
    from cohort as c
    left join dopamine as d on d.stay_id = c.stay_id
)

select * from final
