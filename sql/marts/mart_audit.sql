-- mart_audit: the QI audit of vasopressor practice, every rule for every cohort stay.
-- Grain: one row per cohort stay (mart_cohort) and rule (11 rules; each rule relation has
--   exactly one row per cohort stay).
-- Columns: stay_id, rule (fixed ids), result ('pass', 'fail', 'not_applicable',
--   'not_assessable'), detail (short text with the measured value and the limit).
-- Source: mart_audit_<rule> relations.
with

vp_max_dose as (select * from mart_audit_vp_max_dose),
vp_monotherapy as (select * from mart_audit_vp_monotherapy),
vp_delayed as (select * from mart_audit_vp_delayed),
vp_missed as (select * from mart_audit_vp_missed),
wean_order as (select * from mart_audit_wean_order),
dopamine_use as (select * from mart_audit_dopamine_use),
phenylephrine_first as (select * from mart_audit_phenylephrine_first),
hydrocortisone as (select * from mart_audit_hydrocortisone),
arterial_line as (select * from mart_audit_arterial_line),
fluids_30ml_kg as (select * from mart_audit_fluids_30ml_kg),
map_below_65 as (select * from mart_audit_map_below_65),

unioned as (
    select stay_id, rule, result, detail from vp_max_dose
    union all select stay_id, rule, result, detail from vp_monotherapy
    union all select stay_id, rule, result, detail from vp_delayed
    union all select stay_id, rule, result, detail from vp_missed
    union all select stay_id, rule, result, detail from wean_order
    union all select stay_id, rule, result, detail from dopamine_use
    union all select stay_id, rule, result, detail from phenylephrine_first
    union all select stay_id, rule, result, detail from hydrocortisone
    union all select stay_id, rule, result, detail from arterial_line
    union all select stay_id, rule, result, detail from fluids_30ml_kg
    union all select stay_id, rule, result, detail from map_below_65
),

final as (
    select * from unioned
)

select * from final order by stay_id, rule
