-- mart_audit_hydrocortisone: audit rule hydrocortisone - hydrocortisone is started once
-- vasopressors have been needed at high dose: NE-equivalent >= audit_hydrocortisone_nee_mcg_kg_min
-- for >= audit_hydrocortisone_after_hours (SSC 2021).
-- Grain: one row per cohort stay (mart_cohort).
-- Definition: trigger_time = start of the first high-dose run (int_audit_high_dose_runs, kind
--   'nee_high') lasting >= the duration, + the duration. Hydrocortisone counts when it started by
--   trigger_time + audit_hydrocortisone_grace_hours and was still given at or after the episode
--   start: prescriptions of the stay's admission (drug name contains a hydrocortisone name, route
--   in the systemic list) or eMAR doses given (event_txt in the given list; name not a local
--   form such as a cream, since eMAR has no route). Lists: study_param audit_* ("|"-separated).
-- Result: not_applicable (no such run), not_assessable (neither prescriptions nor eMAR was in the
--   source), pass, fail.
-- Units: hours.
-- Source: mart_cohort, int_audit_high_dose_runs, valid_prescriptions, valid_emar, source_table,
--   study_param.
with

cohort as (
    select * from mart_cohort
),

runs as (
    select * from int_audit_high_dose_runs where kind = 'nee_high'
),

prescriptions as (
    select * from valid_prescriptions
),

emar as (
    select * from valid_emar
),

sources as (
    select * from source_table
),

params as (
    select * from study_param
),

has_source as (
    select coalesce(bool_or(is_available), false) as has_hydrocortisone_source
    from sources
    where table_name in ('prescriptions', 'emar')
),

trigger as (
    select
        r.stay_id,
        min(r.run_start_time + to_microseconds(cast(p.audit_hydrocortisone_after_hours * 3600e6 as bigint)))
            as trigger_time
    from runs as r
    cross join params as p
    where r.run_hours >= p.audit_hydrocortisone_after_hours
    group by r.stay_id
),

hydrocortisone_name as (
    select lower(pattern) as pattern
    from (select unnest(string_split(audit_hydrocortisone_name_substrings, '|')) as pattern from params) as listed
),

excluded_name as (
    select lower(pattern) as pattern
    from (select unnest(string_split(audit_hydrocortisone_exclude_name_substrings, '|')) as pattern from params) as listed
),

systemic_route as (
    select upper(route) as route
    from (select unnest(string_split(audit_hydrocortisone_prescription_routes, '|')) as route from params) as listed
),

given_event as (
    select unnest(string_split(audit_emar_given_event_txt, '|')) as event_txt from params
),

prescription_doses as (
    select
        r.hadm_id,
        r.starttime as start_time,
        coalesce(r.stoptime, r.starttime) as end_time
    from prescriptions as r
    where exists (select 1 from hydrocortisone_name as h where contains(lower(r.drug), h.pattern))
        and not exists (select 1 from excluded_name as x where contains(lower(r.drug), x.pattern))
        and upper(trim(r.route)) in (select route from systemic_route)
),

emar_doses as (
    select
        e.hadm_id,
        e.charttime as start_time,
        e.charttime as end_time
    from emar as e
    where exists (select 1 from hydrocortisone_name as h where contains(lower(e.medication), h.pattern))
        -- eMAR has no route: "Hydrocortisone (Rectal) 2.5% Cream" is excluded by name
        and not exists (select 1 from excluded_name as x where contains(lower(e.medication), x.pattern))
        and trim(e.event_txt) in (select event_txt from given_event)
),

doses as (
    select * from prescription_doses
    union all
    select * from emar_doses
),

first_dose as (
    select
        t.stay_id,
        min(d.start_time) as hydrocortisone_start_time
    from trigger as t
    inner join cohort as c on c.stay_id = t.stay_id
    cross join params as p
    inner join doses as d
        on d.hadm_id = c.hadm_id
        -- already on hydrocortisone at the episode start counts (still given after it)
        and d.end_time >= c.episode_start_time
        and d.start_time <= t.trigger_time
            + to_microseconds(cast(p.audit_hydrocortisone_grace_hours * 3600e6 as bigint))
    group by t.stay_id
),

final as (
    select
        c.stay_id,
        'hydrocortisone' as rule,
        case
            when t.stay_id is null then 'not_applicable'
            when not s.has_hydrocortisone_source then 'not_assessable'
            when f.stay_id is null then 'fail'
            else 'pass'
        end as result,
        case
            when t.stay_id is null then printf('NE-equivalent never >= %.2f mcg/kg/min for %.0f h',
                p.audit_hydrocortisone_nee_mcg_kg_min, p.audit_hydrocortisone_after_hours)
            when not s.has_hydrocortisone_source then 'no prescriptions or eMAR source table'
            when f.stay_id is null then printf('no hydrocortisone by %.0f h after the high-dose trigger',
                p.audit_hydrocortisone_grace_hours)
            else printf('hydrocortisone from %.1f h relative to the high-dose trigger',
                date_diff('second', t.trigger_time, f.hydrocortisone_start_time) / 3600.0)
        end as detail
    from cohort as c
    cross join params as p
    cross join has_source as s
    left join trigger as t on t.stay_id = c.stay_id
    left join first_dose as f on f.stay_id = c.stay_id
)

select * from final
