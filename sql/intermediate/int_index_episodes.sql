-- int_index_episodes: the index shock episode of each stay that received norepinephrine.
-- Grain: one row per ICU stay with at least one infusing norepinephrine row.
-- Definition: ne_start_time = index_time = start of the stay's first norepinephrine infusion
--   (= first infusing NE row start); the index episode is the shock episode containing it.
-- Units: timestamps.
-- Source: int_drug_infusions, int_shock_episodes.
with

infusions as (
    select * from int_drug_infusions
),

episodes as (
    select * from int_shock_episodes
),

first_ne as (
    select
        stay_id,
        min(starttime) as ne_start_time
    from infusions
    where drug = 'norepinephrine'
    group by stay_id
),

final as (
    select
        e.stay_id,
        e.subject_id,
        e.hadm_id,
        e.episode_seq,
        e.episode_start_time,
        e.episode_end_time,
        f.ne_start_time,
        f.ne_start_time as index_time
    from first_ne as f
    -- NE is a vasopressor, so its first infusion lies inside exactly one episode
    inner join episodes as e
        on e.stay_id = f.stay_id
        and e.episode_start_time <= f.ne_start_time
        and f.ne_start_time <= e.episode_end_time
)

select * from final
