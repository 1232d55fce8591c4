-- valid_inputevents: eICU vasoactive infusions in the shape of MIMIC-IV icu/inputevents, one
-- interval per charted point, so the shared staging (stg_inputevents_vasoactive) and the
-- intermediate relations read them unchanged.
-- Grain: one row per stg_eicu__infusiondrug row with a converted dose (convert_rule null) that
--   the ingest did not quarantine (it is still in valid_eicu_infusiondrug) and whose interval
--   has a length (end_offset > infusionoffset).
-- Units: rate in rateuom = the drug's canonical unit (concepts.toml), so the shared staging's
--   factor is 1 (times salt_to_base); patientweight (kg); starttime/endtime (timestamp).
--   itemid = the drug's first item id in concepts.toml (eICU has no item ids; the code says
--   which concept drug the row is); orderid/linkorderid = infusiondrugid.
-- Source: stg_eicu__infusiondrug, valid_eicu_infusiondrug, stg_eicu__patient, concept_drug_unit.
with

classified as (
    select * from stg_eicu__infusiondrug
),

not_quarantined as (
    select source_row from valid_eicu_infusiondrug
),

stays as (
    select * from stg_eicu__patient
),

drug_code as (
    select drug, min(itemid) as itemid, min(canonical_unit) as canonical_unit
    from concept_drug_unit
    group by drug
),

final as (
    select
        c.source_row,
        s.subject_id,
        s.hadm_id,
        s.stay_id,
        cast(null as bigint) as caregiver_id,
        s.unit_admit_time + to_minutes(c.infusionoffset) as starttime,
        s.unit_admit_time + to_minutes(c.end_offset) as endtime,
        cast(null as timestamp) as storetime,
        d.itemid,
        cast(null as double) as amount,
        cast(null as varchar) as amountuom,
        c.rate_canonical as rate,
        d.canonical_unit as rateuom,
        c.infusiondrugid as orderid,
        c.infusiondrugid as linkorderid,
        cast(null as varchar) as ordercategoryname,
        cast(null as varchar) as ordercategorydescription,
        c.weight_kg as patientweight,
        cast(null as double) as totalamount,
        cast(null as varchar) as totalamountuom,
        cast(null as varchar) as statusdescription,
        cast(null as double) as originalamount,
        cast(null as double) as originalrate
    from classified as c
    inner join not_quarantined as q on q.source_row = c.source_row
    inner join stays as s on s.stay_id = c.patientunitstayid
    inner join drug_code as d on d.drug = c.drug
    where c.convert_rule is null
        and c.end_offset > c.infusionoffset
)

select * from final
