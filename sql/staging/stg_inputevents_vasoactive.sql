-- stg_inputevents_vasoactive: vasoactive infusion rows of icu/inputevents, rate in one
-- canonical unit per drug.
-- Grain: one row per valid_inputevents row whose itemid is a concept drug, 'Rewritten' rows
--   excluded.
-- Units: rate_mcg_kg_min (norepinephrine as base, epinephrine, phenylephrine, dopamine, dobutamine,
--   milrinone), rate_units_min (vasopressin), rate_ng_kg_min (angiotensin II): each null unless
--   it is the drug's canonical unit; rate_mcg_min = rate_mcg_kg_min x patientweight_kg (mcg/kg/min
--   drugs only); nee_mcg_kg_min = canonical rate x nee_factor (norepinephrine-equivalent,
--   Goradia 2021); is_infusing = canonical rate > 0.
-- Source: valid_inputevents (ingest), concept_drug_unit (config/concepts.toml [drugs.*]).
with

inputevents as (
    select * from valid_inputevents
),

drug_unit as (
    select * from concept_drug_unit
),

drug as (
    -- one row per item id: drug, role, canonical unit and NEE factor do not depend on rateuom
    select distinct itemid, drug, role, canonical_unit, nee_factor
    from drug_unit
),

not_rewritten as (
    -- 'Rewritten' rows are MetaVision audit copies of a row that was later corrected; the
    -- corrected row is also present, so keeping both would double-count the infusion.
    select *
    from inputevents
    where statusdescription is distinct from 'Rewritten'
),

with_drug as (
    select
        r.*,
        d.drug,
        d.role,
        d.canonical_unit,
        d.nee_factor
    from not_rewritten as r
    inner join drug as d on d.itemid = r.itemid
),

canonical as (
    select
        w.*,
        case
            -- e.g. phenylephrine charted in mcg/min: divide by the row's weight to get mcg/kg/min
            when u.per_weight = 'divide' then w.rate * u.to_canonical * u.salt_to_base / nullif(w.patientweight, 0)
            -- vasopressin units/hour x 1/60 = units/min (mimic-code issue #1279: most rows are
            -- units/hour, a few units/min; never mix them). salt_to_base: norepinephrine charted
            -- as tartrate (study.toml [units] norepinephrine_salt) x 0.5 = base, before any
            -- threshold downstream; 1 for every other drug and for base
            else w.rate * u.to_canonical * u.salt_to_base
        end as rate_canonical
    from with_drug as w
    -- the ingest quarantines a rate in a unit not listed for its drug, so every charted rate
    -- finds its unit here; a row without rateuom carries no rate and is "not infusing"
    left join drug_unit as u
        on u.itemid = w.itemid
        and u.rateuom = w.rateuom
),

final as (
    select
        source_row,
        subject_id,
        hadm_id,
        stay_id,
        drug,
        role,
        itemid,
        starttime,
        endtime,
        statusdescription,
        linkorderid,
        orderid,
        patientweight as patientweight_kg,
        case when canonical_unit = 'mcg/kg/min' then rate_canonical end as rate_mcg_kg_min,
        case when canonical_unit = 'units/min' then rate_canonical end as rate_units_min,
        case when canonical_unit = 'ng/kg/min' then rate_canonical end as rate_ng_kg_min,
        case when canonical_unit = 'mcg/kg/min' then rate_canonical * patientweight end as rate_mcg_min,
        rate_canonical * nee_factor as nee_mcg_kg_min,
        -- rate 0 or null: the row is charted but nothing is infusing (e.g. a paused line)
        coalesce(rate_canonical > 0, false) as is_infusing
    from canonical
)

select * from final
