-- stg_inputevents_crystalloid: crystalloid volumes given (QI audit rule fluids_30ml_kg).
-- Grain: one row per valid_inputevents row of a crystalloid item (concept_audit_item kind
--   'crystalloid') with a positive amount in study_param audit_crystalloid_amountuom (matched
--   case-insensitively: MIMIC charts both 'ml' and 'mL'); 'Rewritten' audit copies excluded.
-- Units: amount_ml (mL); starttime/endtime (timestamp).
-- Source: valid_inputevents, concept_audit_item (concepts.toml [audit_items]), study_param.
with

inputevents as (
    select * from valid_inputevents
),

audit_item as (
    select * from concept_audit_item
),

params as (
    select * from study_param
),

final as (
    select
        r.source_row,
        r.stay_id,
        r.starttime,
        r.endtime,
        r.amount as amount_ml
    from inputevents as r
    cross join params as p
    inner join audit_item as a
        on a.itemid = r.itemid
        and a.kind = 'crystalloid'
        and a.source_table = 'inputevents'
    -- 'Rewritten' rows are audit copies of corrected rows (see stg_inputevents_vasoactive)
    where r.statusdescription is distinct from 'Rewritten'
        and r.amount > 0
        and lower(r.amountuom) = lower(p.audit_crystalloid_amountuom)
)

select * from final
