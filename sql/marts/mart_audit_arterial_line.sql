-- mart_audit_arterial_line: audit rule arterial_line - an arterial catheter is in place at some
-- time while vasopressors infuse in the index episode (SSC 2021).
-- Grain: one row per cohort stay (mart_cohort).
-- Definition: an arterial-line row of the stay (stg_procedureevents_arterial_line) whose
--   [starttime, endtime] overlaps a segment with a vasopressor infusing. A row without endtime
--   counts at its starttime.
-- Result: not_assessable (no procedureevents source), pass, fail.
-- Source: mart_cohort, int_audit_episode_segments, stg_procedureevents_arterial_line,
--   source_table.
with

cohort as (
    select * from mart_cohort
),

segments as (
    select * from int_audit_episode_segments
),

arterial_lines as (
    select * from stg_procedureevents_arterial_line
),

sources as (
    select * from source_table
),

has_source as (
    -- a source may say it has procedures but no arterial-line records at all (eICU-CRD: its
    -- procedures are treatment strings; source_table row 'audit_arterial_line' = false)
    select
        coalesce(bool_or(is_available) filter (where table_name = 'procedureevents'), false)
            and coalesce(bool_and(is_available) filter (where table_name = 'audit_arterial_line'), true)
            as has_procedure_source
    from sources
),

covered as (
    select
        s.stay_id,
        min(greatest(s.segment_start_time, l.starttime)) as first_covered_time
    from segments as s
    inner join arterial_lines as l
        on l.stay_id = s.stay_id
        and l.starttime <= s.segment_end_time
        and l.endtime >= s.segment_start_time
    where s.is_vasopressor_running
    group by s.stay_id
),

final as (
    select
        c.stay_id,
        'arterial_line' as rule,
        case
            when not h.has_procedure_source then 'not_assessable'
            when v.stay_id is null then 'fail'
            else 'pass'
        end as result,
        case
            when not h.has_procedure_source then 'no procedureevents source table'
            when v.stay_id is null then 'no arterial line while on vasopressors'
            else printf('arterial line in place %.1f h after the episode start',
                date_diff('second', c.episode_start_time, v.first_covered_time) / 3600.0)
        end as detail
    from cohort as c
    cross join has_source as h
    left join covered as v on v.stay_id = c.stay_id
)

select * from final
