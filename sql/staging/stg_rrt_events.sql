-- stg_rrt_events: renal replacement therapy events (a procedure row or a value charted on a
-- dialysis item), each marked active (a session is running) or present only (dialysis
-- equipment is there, e.g. catheter lumen volumes 224404/224406 or circuit pressures).
-- Grain: one row per valid_procedureevents RRT row (not 'Rewritten') or valid_chartevents RRT
--   row with a value.
-- Columns: is_active = the procedure items (all active) or a chartevents item that means an
--   active session, or a text item with its active value (225965 'In use'); mimic-code's
--   dialysis_active. Only active rows are the RRT outcome (mart_cohort).
-- Units: event_time (timestamp).
-- Source: valid_procedureevents, valid_chartevents, concept_rrt_item (concepts.toml [rrt],
--   mimic-code treatment/rrt.sql).
with

procedureevents as (
    select * from valid_procedureevents
),

chartevents as (
    select * from valid_chartevents
),

rrt_item as (
    select * from concept_rrt_item
),

rrt_procedures as (
    select
        p.subject_id,
        p.stay_id,
        p.itemid,
        p.starttime as event_time,
        'procedureevents' as source_table,
        i.is_active
    from procedureevents as p
    inner join rrt_item as i
        on i.itemid = p.itemid
        and i.source_table = 'procedureevents'
    -- 'Rewritten' rows are audit copies of corrected rows (see stg_inputevents_vasoactive)
    where p.statusdescription is distinct from 'Rewritten'
),

rrt_charted as (
    select
        c.subject_id,
        c.stay_id,
        c.itemid,
        c.charttime as event_time,
        'chartevents' as source_table,
        coalesce(i.is_active or trim(c.value) = i.active_value, false) as is_active
    from chartevents as c
    inner join rrt_item as i
        on i.itemid = c.itemid
        and i.source_table = 'chartevents'
    -- an empty row says nothing (mimic-code keeps chartevents rows with a value only)
    where c.value is not null or c.valuenum is not null
),

final as (
    select * from rrt_procedures
    union all
    select * from rrt_charted
)

select * from final
