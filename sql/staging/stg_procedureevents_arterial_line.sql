-- stg_procedureevents_arterial_line: arterial catheters in place (QI audit rule arterial_line).
-- Grain: one row per valid_procedureevents row of an arterial-line item (concept_audit_item
--   kind 'arterial_line'), 'Rewritten' audit copies excluded.
-- Units: starttime/endtime (timestamp); a row without endtime ends at its starttime.
-- Source: valid_procedureevents, concept_audit_item (concepts.toml [audit_items]).
with

procedures as (
    select * from valid_procedureevents
),

audit_item as (
    select * from concept_audit_item
),

final as (
    select
        r.source_row,
        r.stay_id,
        r.starttime,
        coalesce(r.endtime, r.starttime) as endtime
    from procedures as r
    inner join audit_item as a
        on a.itemid = r.itemid
        and a.kind = 'arterial_line'
        and a.source_table = 'procedureevents'
    -- 'Rewritten' rows are audit copies of corrected rows (see stg_inputevents_vasoactive)
    where r.statusdescription is distinct from 'Rewritten'
)

select * from final
