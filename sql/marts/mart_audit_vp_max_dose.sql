-- mart_audit_vp_max_dose: audit rule vp_max_dose - vasopressin never above
-- audit_vp_max_dose_units_min (0.04 U/min) during the index episode.
-- Grain: one row per cohort stay (mart_cohort).
-- Result: not_applicable (no vasopressin infusing in the index episode), pass (highest
--   vasopressin rate <= limit + audit_vp_max_dose_tolerance_units_min), fail (above it). The
--   tolerance absorbs rates MetaVision recomputes from volume (2.4 U/h charted as 2.407 U/h).
--   Rates are units/min (units/hour rows were converted in staging, mimic-code issue #1279).
-- Source: mart_cohort, int_audit_episode_segments, study_param.
with

cohort as (
    select * from mart_cohort
),

segments as (
    select * from int_audit_episode_segments
),

params as (
    select * from study_param
),

vp_max as (
    select
        stay_id,
        max(vp_rate_units_min) as vp_max_rate_units_min
    from segments
    where vp_rate_units_min > 0
    group by stay_id
),

final as (
    select
        c.stay_id,
        'vp_max_dose' as rule,
        case
            when v.stay_id is null then 'not_applicable'
            when v.vp_max_rate_units_min > p.audit_vp_max_dose_units_min + p.audit_vp_max_dose_tolerance_units_min then 'fail'
            else 'pass'
        end as result,
        case
            when v.stay_id is null then 'no vasopressin in the index episode'
            else printf('highest vasopressin rate %.4f U/min (limit %.3f U/min)',
                        v.vp_max_rate_units_min, p.audit_vp_max_dose_units_min)
        end as detail
    from cohort as c
    cross join params as p
    left join vp_max as v on v.stay_id = c.stay_id
)

select * from final
