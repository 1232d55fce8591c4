-- mart_audit_vp_monotherapy: audit rule vp_monotherapy - vasopressin is started as an add-on,
-- i.e. at its first start in the index episode at least one catecholamine vasopressor
-- (concept is_catecholamine: NE, epinephrine, phenylephrine, dopamine) is infusing.
-- Vasopressin running alone later (NE weaned first) is expected and not judged here.
-- Grain: one row per cohort stay (mart_cohort).
-- "Infusing" means inside a continuous infusion (int_drug_infusions: rows closer than
--   episodes_drug_gap_minutes are one infusion), so VP started during a short NE pause (bag
--   change) is still an add-on, although the NE rate at that instant is 0.
-- Result: not_applicable (no vasopressin in the index episode), pass, fail (no catecholamine
--   infusion running at the vasopressin start; one started in the same minute counts).
-- Source: mart_cohort, int_audit_episode_segments, int_drug_infusions, concept_drug_unit.
with

cohort as (
    select * from mart_cohort
),

segments as (
    select * from int_audit_episode_segments
),

infusions as (
    select * from int_drug_infusions
),

drug as (
    select distinct drug, role, is_catecholamine from concept_drug_unit
),

first_vp as (
    -- segments start at every rate change: the first with vasopressin starts at its first start
    select
        stay_id,
        min(segment_start_time) as vp_first_start_time
    from segments
    where vp_rate_units_min > 0
    group by stay_id
),

first_vp_segment as (
    select
        v.stay_id,
        v.vp_first_start_time,
        count(i.drug) as n_catecholamines_running
    from first_vp as v
    left join infusions as i
        on i.stay_id = v.stay_id
        and i.starttime <= v.vp_first_start_time
        and i.endtime > v.vp_first_start_time
        and i.drug in (select drug from drug where role = 'vasopressor' and is_catecholamine)
    group by v.stay_id, v.vp_first_start_time
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
