-- mart_audit_wean_order: audit rule wean_order - when NE and vasopressin both run, vasopressin is
-- not stopped while NE is still above audit_wean_order_ne_above_mcg_kg_min (NE is weaned first:
-- VASST and VANISH protocols).
-- Grain: one row per cohort stay (mart_cohort).
-- Definition: a vasopressin stop is the end of a vasopressin infusion (int_drug_infusions: rows
--   closer than episodes_drug_gap_minutes are one infusion, so a bag change is no stop) inside
--   the index episode; the NE rate at that instant is the rate of the segment starting there
--   (0 if NE stops at the same time or the episode ends).
-- Result: not_applicable (NE and vasopressin never infusing together in the index episode),
--   fail (any stop with NE above the limit), pass.
-- Units: NE mcg/kg/min.
-- Source: mart_cohort, int_drug_infusions, int_audit_episode_segments, study_param.
with

cohort as (
    select * from mart_cohort
),

infusions as (
    select * from int_drug_infusions
),

segments as (
    select * from int_audit_episode_segments
),

params as (
    select * from study_param
),

both_running as (
    select distinct stay_id
    from segments
    where ne_rate_mcg_kg_min > 0 and vp_rate_units_min > 0
),

vp_stops as (
    select
        c.stay_id,
        i.endtime as vp_stop_time
    from cohort as c
    inner join infusions as i
        on i.stay_id = c.stay_id
        and i.drug = 'vasopressin'
        and i.starttime < c.episode_end_time
        and i.endtime > c.episode_start_time
),

ne_at_stop as (
    select
        v.stay_id,
        v.vp_stop_time,
        coalesce(s.ne_rate_mcg_kg_min, 0) as ne_rate_at_stop_mcg_kg_min
    from vp_stops as v
    left join segments as s
        on s.stay_id = v.stay_id
        and s.segment_start_time = v.vp_stop_time
),

per_stay as (
    select stay_id, max(ne_rate_at_stop_mcg_kg_min) as max_ne_at_stop_mcg_kg_min
    from ne_at_stop
    group by stay_id
),

final as (
    select
        c.stay_id,
        'wean_order' as rule,
        case
            when b.stay_id is null then 'not_applicable'
            when n.max_ne_at_stop_mcg_kg_min > p.audit_wean_order_ne_above_mcg_kg_min then 'fail'
            else 'pass'
        end as result,
        case
            when b.stay_id is null then 'NE and vasopressin never infused together'
            else printf('highest NE rate when vasopressin stopped %.3f mcg/kg/min (limit %.2f)',
                        coalesce(n.max_ne_at_stop_mcg_kg_min, 0), p.audit_wean_order_ne_above_mcg_kg_min)
        end as detail
    from cohort as c
    cross join params as p
    left join both_running as b on b.stay_id = c.stay_id
    left join per_stay as n on n.stay_id = c.stay_id
)

select * from final
