-- int_audit_episode_segments: the vasopressor timeline of each cohort stay's index episode, cut
-- into elementary segments during which no vasopressor rate changes.
-- Grain: one row per cohort stay (mart_cohort) and segment [segment_start_time,
--   segment_end_time) inside [episode_start_time, episode_end_time]; segments cover the
--   episode without gaps or overlaps (moments with no vasopressor infusing are segments with
--   is_vasopressor_running = false).
-- Units: ne_rate_mcg_kg_min, ne_rate_mcg_min, vp_rate_units_min (0 when the drug is not
--   infusing; ne_rate_mcg_min null when NE runs without a weight), nee_mcg_kg_min
--   (norepinephrine-equivalent of all vasopressors incl. vasopressin, Goradia 2021),
--   n_catecholamines_running (count of catecholamine vasopressors infusing), segment_hours.
-- Source: mart_cohort, int_drug_rate_intervals (rates already resolved for overlapping rows),
--   concept_drug_unit (role, is_catecholamine).
with

cohort as (
    select * from mart_cohort
),

rate_intervals as (
    select * from int_drug_rate_intervals
),

drug as (
    select distinct drug, role, is_catecholamine from concept_drug_unit
),

episode_intervals as (
    -- infusing vasopressor intervals clipped to the index episode; inotropes (dobutamine,
    -- milrinone) do not make a vasopressor running
    select
        i.stay_id,
        i.drug,
        d.is_catecholamine,
        greatest(i.starttime, c.episode_start_time) as starttime,
        least(i.endtime, c.episode_end_time) as endtime,
        i.rate_mcg_kg_min,
        i.rate_mcg_min,
        i.rate_units_min,
        i.nee_mcg_kg_min
    from cohort as c
    inner join rate_intervals as i
        on i.stay_id = c.stay_id
        and i.starttime < c.episode_end_time
        and i.endtime > c.episode_start_time
    inner join drug as d on d.drug = i.drug
    where i.is_infusing and d.role = 'vasopressor'
),

boundaries as (
    select stay_id, episode_start_time as boundary_time from cohort
    union
    select stay_id, episode_end_time as boundary_time from cohort
    union
    select stay_id, starttime as boundary_time from episode_intervals
    union
    select stay_id, endtime as boundary_time from episode_intervals
),

segments as (
    select
        stay_id,
        boundary_time as segment_start_time,
        lead(boundary_time) over (partition by stay_id order by boundary_time) as segment_end_time
    from boundaries
),

segment_rates as (
    -- at most one interval per drug covers a segment (int_drug_rate_intervals never overlap
    -- within a drug), so max() picks that drug's rate; drugs add up only in the NEE sum
    select
        s.stay_id,
        s.segment_start_time,
        s.segment_end_time,
        coalesce(max(i.rate_mcg_kg_min) filter (where i.drug = 'norepinephrine'), 0) as ne_rate_mcg_kg_min,
        case
            when count(i.drug) filter (where i.drug = 'norepinephrine') = 0 then 0
            else max(i.rate_mcg_min) filter (where i.drug = 'norepinephrine')
        end as ne_rate_mcg_min,
        coalesce(max(i.rate_units_min) filter (where i.drug = 'vasopressin'), 0) as vp_rate_units_min,
        coalesce(sum(i.nee_mcg_kg_min), 0) as nee_mcg_kg_min,
        count(i.drug) filter (where i.is_catecholamine) as n_catecholamines_running,
        count(i.drug) filter (where i.drug = 'dopamine') > 0 as is_dopamine_running,
        count(i.drug) filter (where i.drug = 'phenylephrine') > 0 as is_phenylephrine_running,
        count(i.drug) > 0 as is_vasopressor_running
    from segments as s
    left join episode_intervals as i
        on i.stay_id = s.stay_id
        and i.starttime <= s.segment_start_time
        and i.endtime > s.segment_start_time
    where s.segment_end_time is not null
    group by s.stay_id, s.segment_start_time, s.segment_end_time
),

final as (
    select
        *,
        date_diff('second', segment_start_time, segment_end_time) / 3600.0 as segment_hours
    from segment_rates
)

select * from final
