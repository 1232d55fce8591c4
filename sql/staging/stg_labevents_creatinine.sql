-- stg_labevents_creatinine: creatinine results.
-- Grain: one row per valid_labevents row of a creatinine item with a numeric value.
-- Units: creatinine_mg_dl (mg/dL).
-- Source: valid_labevents, concept_measurement (concepts.toml [measurements.creatinine]).
with

labevents as (
    select * from valid_labevents
),

creatinine_item as (
    select itemid
    from concept_measurement
    where concept = 'creatinine' and source_table = 'labevents'
),

final as (
    select
        l.subject_id,
        -- hadm_id is null for labs drawn outside an admission: join on subject_id and time
        l.hadm_id,
        l.itemid,
        l.charttime,
        l.valuenum as creatinine_mg_dl
    from labevents as l
    inner join creatinine_item as i on i.itemid = l.itemid
    where l.valuenum is not null
)

select * from final
