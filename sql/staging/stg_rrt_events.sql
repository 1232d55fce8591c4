-- stg_rrt_events: renal replacement therapy events (a procedure row or a value charted during
-- an active RRT session).
-- Grain: one row per valid_procedureevents RRT row (not 'Rewritten') or valid_chartevents RRT row.
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
        'procedureevents' as source_table
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
        'chartevents' as source_table
    from chartevents as c
    inner join rrt_item as i
        on i.itemid = c.itemid
        and i.source_table = 'chartevents'
),

final as (
    select * from rrt_procedures
    union all
    select * from rrt_charted
)

select * from final
