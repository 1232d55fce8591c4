-- mart_audit_vp_delayed: audit rule vp_delayed - when vasopressin is added to NE, the NE rate at
-- vasopressin start is not above classification_timing_delayed_above_ne_mcg_kg_min (0.5
-- mcg/kg/min) nor above classification_timing_delayed_above_ne_mcg_min (35 mcg/min): the same
-- definition as mart_cohort.timing_class = 'delayed'.
-- Grain: one row per cohort stay (mart_cohort).
-- Result: not_applicable (exposure ne_only or vp_before_ne: no vasopressin added to NE),
--   fail (either rate above its limit), pass (both known and not above), not_assessable (a rate
--   is unknown, e.g. no patientweight for the mcg/min rate, and the other does not fail).
-- Units: NE mcg/kg/min and mcg/min.
-- Source: mart_cohort, study_param.
with

cohort as (
    select * from mart_cohort
),

params as (
    select * from study_param
),

final as (
    select
        c.stay_id,
        'vp_delayed' as rule,
        case
            when c.exposure is distinct from 'vp_added' then 'not_applicable'
            when c.ne_rate_at_vp_mcg_kg_min > p.classification_timing_delayed_above_ne_mcg_kg_min
                or c.ne_rate_at_vp_mcg_min > p.classification_timing_delayed_above_ne_mcg_min then 'fail'
            when c.ne_rate_at_vp_mcg_kg_min is null or c.ne_rate_at_vp_mcg_min is null then 'not_assessable'
            else 'pass'
        end as result,
        case
            when c.exposure is distinct from 'vp_added' then printf('exposure %s: vasopressin not added to NE', c.exposure)
            else printf('NE at vasopressin start %s mcg/kg/min, %s mcg/min (limits %.2f, %.0f)',
                        coalesce(printf('%.3f', c.ne_rate_at_vp_mcg_kg_min), 'unknown'),
                        coalesce(printf('%.1f', c.ne_rate_at_vp_mcg_min), 'unknown'),
                        p.classification_timing_delayed_above_ne_mcg_kg_min,
                        p.classification_timing_delayed_above_ne_mcg_min)
        end as detail
    from cohort as c
    cross join params as p
)

select * from final
