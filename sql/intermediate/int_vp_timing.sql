-- int_vp_timing: norepinephrine dose at vasopressin start and its classification.
-- Grain: one row per ICU stay with exposure 'vp_added'.
-- Definition: the NE rate in force at vp_start_time (int_drug_rate_intervals: covering row with
--   the latest start, so a same-minute rate change counts with its new rate and an NE started in
--   the same minute as VP counts with its first rate); NE paused (no covering row) = rate 0.
--   vasst_stratum by ne_rate_at_vp_mcg_min: below_entry < entry <= less_severe < more_severe
--   <= more_severe (VASST). timing_class: delayed if mcg/min > delayed_above_ne_mcg_min (absolute
--   rule wins) or mcg/kg/min > delayed_above_ne_mcg_kg_min; else early < recommended <=
--   recommended < ssc_window <= ssc_window <= delayed_above (Surviving Sepsis Campaign 2021).
-- Units: ne_rate_at_vp_mcg_kg_min (mcg/kg/min), ne_rate_at_vp_mcg_min (mcg/min),
--   nee_at_vp_mcg_kg_min (NE-equivalent mcg/kg/min, VP excluded), weight_kg (kg),
--   hours_ne_to_vp (hours).
-- Source: int_index_exposure, int_drug_rate_intervals, stg_inputevents_vasoactive, study_param.
with

exposure as (
    select * from int_index_exposure
),

rate_intervals as (
    select * from int_drug_rate_intervals
),

vasoactive as (
    select * from stg_inputevents_vasoactive
),

params as (
    select * from study_param
),

vp_added as (
    select stay_id, ne_start_time, vp_start_time
    from exposure
    where exposure = 'vp_added'
),

intervals_at_vp as (
    select
        a.stay_id,
        i.drug,
        i.role,
        i.rate_mcg_kg_min,
        i.rate_mcg_min,
        i.nee_mcg_kg_min,
        i.patientweight_kg
    from vp_added as a
    inner join rate_intervals as i
        on i.stay_id = a.stay_id
        and i.starttime <= a.vp_start_time
        and a.vp_start_time < i.endtime
),

ne_at_vp as (
    select stay_id, rate_mcg_kg_min, rate_mcg_min, patientweight_kg
    from intervals_at_vp
    where drug = 'norepinephrine'
),

nee_at_vp as (
    -- Goradia 2021 NE-equivalent of the vasopressors already running; vasopressin is the drug
    -- being added, so it is left out
    select
        stay_id,
        sum(coalesce(nee_mcg_kg_min, 0)) as nee_at_vp_mcg_kg_min
    from intervals_at_vp
    where role = 'vasopressor' and drug <> 'vasopressin'
    group by stay_id
),

last_ne_weight as (
    -- NE paused at VP start: no covering row gives a weight; take the weight charted on the
    -- latest NE row started before VP (study choice; the rate is 0 either way)
    select
        a.stay_id,
        v.patientweight_kg
    from vp_added as a
    inner join vasoactive as v
        on v.stay_id = a.stay_id
        and v.drug = 'norepinephrine'
        and v.starttime <= a.vp_start_time
    qualify row_number() over (
        partition by a.stay_id order by v.starttime desc, v.orderid desc nulls last, v.source_row desc
    ) = 1
),

rates as (
    select
        a.stay_id,
        a.vp_start_time,
        date_diff('second', a.ne_start_time, a.vp_start_time) / 3600.0 as hours_ne_to_vp,
        coalesce(n.rate_mcg_kg_min, 0) as ne_rate_at_vp_mcg_kg_min,
        -- rate 0 (paused or not covered): 0 mcg/min whatever the weight; else rate x that row's weight
        case when coalesce(n.rate_mcg_kg_min, 0) = 0 then 0 else n.rate_mcg_min end as ne_rate_at_vp_mcg_min,
        coalesce(e.nee_at_vp_mcg_kg_min, 0) as nee_at_vp_mcg_kg_min,
        coalesce(n.patientweight_kg, w.patientweight_kg) as weight_kg
    from vp_added as a
    left join ne_at_vp as n on n.stay_id = a.stay_id
    left join nee_at_vp as e on e.stay_id = a.stay_id
    left join last_ne_weight as w on w.stay_id = a.stay_id
),

final as (
    select
        r.*,
        case
            when r.ne_rate_at_vp_mcg_min < p.classification_vasst_entry_ne_mcg_min then 'below_entry'
            when r.ne_rate_at_vp_mcg_min < p.classification_vasst_more_severe_ne_mcg_min then 'less_severe'
            when r.ne_rate_at_vp_mcg_min >= p.classification_vasst_more_severe_ne_mcg_min then 'more_severe'
        end as vasst_stratum,
        case
            -- the absolute rule catches heavy patients whose per-kg dose looks moderate
            when r.ne_rate_at_vp_mcg_min > p.classification_timing_delayed_above_ne_mcg_min then 'delayed'
            when r.ne_rate_at_vp_mcg_kg_min > p.classification_timing_delayed_above_ne_mcg_kg_min then 'delayed'
            when r.ne_rate_at_vp_mcg_kg_min < p.classification_timing_recommended_ne_mcg_kg_min then 'early'
            when r.ne_rate_at_vp_mcg_kg_min < p.classification_timing_ssc_window_ne_mcg_kg_min then 'recommended'
            when r.ne_rate_at_vp_mcg_kg_min >= p.classification_timing_ssc_window_ne_mcg_kg_min then 'ssc_window'
        end as timing_class
    from rates as r
    cross join params as p
)

select * from final
