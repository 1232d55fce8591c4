-- mart_audit_vp_monotherapy: audit rule vp_monotherapy - vasopressin is started as an add-on,
-- i.e. at its first start in the index episode at least one catecholamine vasopressor
-- (concept is_catecholamine: NE, epinephrine, phenylephrine, dopamine) is infusing.
-- Vasopressin running alone later (NE weaned first) is expected and not judged here.
-- Grain: one row per cohort stay (mart_cohort).
-- Result: not_applicable (no vasopressin in the index episode), pass, fail (no catecholamine
--   infusing at the vasopressin start; a catecholamine started in the same minute counts).
-- Source: mart_cohort, int_audit_episode_segments.
with

cohort as (
    select * from mart_cohort
),

segments as (
    select * from int_audit_episode_segments
),

first_vp_segment as (
    -- segments start at every rate change, so the first segment with vasopressin starts exactly
    -- at the vasopressin start and shows what else was infusing at that instant
    select
        stay_id,
        segment_start_time as vp_first_start_time,
        n_catecholamines_running
    from segments
    where vp_rate_units_min > 0
    qualify row_number() over (partition by stay_id order by segment_start_time) = 1
),

final as (
    select
        c.stay_id,
        'vp_monotherapy' as rule,
        case
            when f.stay_id is null then 'not_applicable'
            when f.n_catecholamines_running = 0 then 'fail'
            else 'pass'
        end as result,
        case
            when f.stay_id is null then 'no vasopressin in the index episode'
            when f.n_catecholamines_running = 0 then printf(
                'vasopressin started with no catecholamine infusing (%.1f h after NE start)',
                date_diff('second', c.ne_start_time, f.vp_first_start_time) / 3600.0)
            else printf('vasopressin started with %d catecholamine(s) infusing',
                        f.n_catecholamines_running)
        end as detail
    from cohort as c
    left join first_vp_segment as f on f.stay_id = c.stay_id
)

select * from final
