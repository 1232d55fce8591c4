-- mart_ne_timeline: the norepinephrine dose over the index episode of each cohort stay (the
-- survival models read the NE dose at any landmark time from it).
-- Grain: one row per resolved NE rate interval (int_drug_rate_intervals) overlapping the index
--   episode of a mart_cohort row. Intervals of one stay do not overlap; a charted row with rate
--   0 (paused) gives rate 0; instants without an NE row have no row (rate 0).
-- Units: ne_rate_mcg_kg_min (mcg/kg/min), ne_rate_mcg_min (mcg/min = mcg/kg/min x the row's
--   patientweight).
-- Source: mart_cohort, int_drug_rate_intervals.
with

cohort as (
    select * from mart_cohort
),

rate_intervals as (
    select * from int_drug_rate_intervals
),

final as (
    select
        c.stay_id,
        i.starttime,
        i.endtime,
        coalesce(i.rate_mcg_kg_min, 0) as ne_rate_mcg_kg_min,
        case when coalesce(i.rate_mcg_kg_min, 0) = 0 then 0 else i.rate_mcg_min end as ne_rate_mcg_min
    from cohort as c
    inner join rate_intervals as i
        on i.stay_id = c.stay_id
        and i.drug = 'norepinephrine'
        and i.starttime < c.episode_end_time
        and i.endtime > c.episode_start_time
)

select * from final order by stay_id, starttime
