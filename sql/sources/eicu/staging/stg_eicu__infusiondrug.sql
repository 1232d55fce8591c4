-- stg_eicu__infusiondrug: eICU infusionDrug rows of the concept drugs, classified: drug from the
-- name pattern, unit from the name's last parentheses, dose in the drug's canonical unit, the
-- interval each point row holds for, and the rule when the dose cannot be converted.
-- Grain: one row per valid_eicu_infusiondrug row whose drugname matches a concept drug pattern
--   (carrier volumes 'Volume (ml) ...' excluded: they are fluid, not dose).
-- Units: drugrate as charted (unit column); rate_canonical in concepts.toml's canonical unit of
--   the drug (mcg/kg/min, units/min, ng/kg/min); weight_kg (kg); offsets in minutes from unit
--   admission; end_offset = the next charted offset of the same drug and stay (any row, also an
--   unconvertible one: what ran after it is unknown), capped at infusionoffset + the
--   carry-forward cap (config/eicu.toml [infusion]).
-- convert_rule: null when rate_canonical is the dose; else the quarantine rule (the ingest
--   quarantines these rows; their dose is never guessed).
-- Source: valid_eicu_infusiondrug, valid_eicu_patient, concept_eicu_drug_pattern,
--   concept_eicu_carrier, concept_eicu_unit, concept_eicu_concentration, concept_eicu_param.
with

infusions as (
    select * from valid_eicu_infusiondrug
),

patients as (
    select * from valid_eicu_patient
),

drug_pattern as (
    select * from concept_eicu_drug_pattern
),

carrier as (
    select * from concept_eicu_carrier
),

unit_conversion as (
    select * from concept_eicu_unit
),

concentration as (
    select * from concept_eicu_concentration
),

params as (
    select * from concept_eicu_param
),

carrier_rows as (
    select distinct i.source_row
    from infusions as i
    inner join carrier as c on starts_with(lower(trim(i.drugname)), c.prefix)
),

matched as (
    -- patterns are tried in priority order: 'norepinephrine' before 'epinephrine'
    select
        i.source_row,
        p.drug,
        row_number() over (partition by i.source_row order by p.priority) as match_rank
    from infusions as i
    inner join drug_pattern as p on contains(lower(i.drugname), p.pattern)
    left join carrier_rows as c on c.source_row = i.source_row
    where c.source_row is null
),

classified as (
    select
        i.source_row,
        i.infusiondrugid,
        i.patientunitstayid,
        i.infusionoffset,
        i.drugname,
        m.drug,
        -- the unit is the text in the last parentheses: 'Norepinephrine (mcg/min)' -> mcg/min,
        -- 'Norepinephrine ()' and 'Norepinephrine' -> '' (unitless)
        lower(trim(regexp_extract(i.drugname, '\(([^()]*)\)\s*$', 1))) as unit,
        i.drugrate,
        i.drugamount,
        i.volumeoffluid,
        -- infusionDrug.patientweight is charted only on per-kg rows; else the admission weight
        -- (a weight outside the plausible range is no weight)
        case
            when i.patientweight between pa.weight_min_kg and pa.weight_max_kg then i.patientweight
            when p.admissionweight between pa.weight_min_kg and pa.weight_max_kg then p.admissionweight
        end as weight_kg
    from infusions as i
    inner join matched as m on m.source_row = i.source_row and m.match_rank = 1
    left join patients as p on p.patientunitstayid = i.patientunitstayid
    cross join params as pa
),

with_conversion as (
    select
        c.*,
        u.to_canonical,
        u.per_weight,
        k.amount_to_dose,
        ku.to_canonical as concentration_to_canonical,
        ku.per_weight as concentration_per_weight
    from classified as c
    left join unit_conversion as u on u.drug = c.drug and u.unit = c.unit
    left join concentration as k on k.drug = c.drug
    left join unit_conversion as ku on ku.drug = k.drug and ku.unit = k.dose_unit
),

dosed as (
    select
        w.*,
        coalesce(
            w.unit = pa.pump_rate_unit
            and w.drugamount > 0
            and w.volumeoffluid > 0
            and w.concentration_to_canonical is not null, false
        ) as has_concentration,
        case
            when w.to_canonical is not null then w.per_weight
            else w.concentration_per_weight
        end as effective_per_weight,
        case
            when w.to_canonical is not null then w.drugrate * w.to_canonical
            -- ml/hr x (drugamount / volumeoffluid per ml) x amount_to_dose / 60 min per hour
            when w.unit = pa.pump_rate_unit and w.drugamount > 0 and w.volumeoffluid > 0
                then w.drugrate * w.drugamount / w.volumeoffluid * w.amount_to_dose / 60.0
                    * w.concentration_to_canonical
        end as rate_unweighted
    from with_conversion as w
    cross join params as pa
),

ruled as (
    select
        d.*,
        case
            when d.effective_per_weight = 'divide' then d.rate_unweighted / d.weight_kg
            else d.rate_unweighted
        end as rate_canonical,
        case
            when d.drugrate is null then 'completeness.drugrate'
            when d.unit = '' then 'conformance.rate_unit_missing'
            when d.unit = pa.pump_rate_unit and not d.has_concentration
                then 'conformance.rate_unit_no_concentration'
            when d.rate_unweighted is null then 'conformance.rate_unit'
            when d.effective_per_weight = 'divide' and d.weight_kg is null then 'completeness.weight_for_rate'
        end as convert_rule
    from dosed as d
    cross join params as pa
),

offsets as (
    select distinct patientunitstayid, drug, infusionoffset
    from ruled
),

next_offsets as (
    select
        patientunitstayid,
        drug,
        infusionoffset,
        lead(infusionoffset) over (
            partition by patientunitstayid, drug order by infusionoffset
        ) as next_offset
    from offsets
),

final as (
    select
        r.source_row,
        r.infusiondrugid,
        r.patientunitstayid,
        r.infusionoffset,
        least(n.next_offset, r.infusionoffset + pa.carry_forward_cap_minutes) as end_offset,
        r.drugname,
        r.drug,
        r.unit,
        r.drugrate,
        r.weight_kg,
        r.has_concentration,
        r.rate_canonical,
        r.convert_rule
    from ruled as r
    inner join next_offsets as n
        on n.patientunitstayid = r.patientunitstayid
        and n.drug = r.drug
        and n.infusionoffset = r.infusionoffset
    cross join params as pa
)

select * from final
