-- int_index_exposure: vasopressin exposure of each index episode.
-- Grain: one row per ICU stay with an index episode (int_index_episodes).
-- Definition: exposure = 'vp_added' if vasopressin's first infusion start inside the episode is
--   at or after ne_start_time; 'vp_before_ne' if vasopressin was infusing inside the episode
--   before ne_start_time; 'ne_only' if no vasopressin infusion lies in the episode (a VP
--   infusion in a later episode does not count: it is after the index decision).
--   vp_start_time is set for vp_added only.
-- Units: timestamps.
-- Source: int_index_episodes, int_drug_infusions.
with

index_episodes as (
    select * from int_index_episodes
),

infusions as (
    select * from int_drug_infusions
),

vasopressin_infusions as (
    select * from infusions where drug = 'vasopressin'
),

first_vp_in_episode as (
    -- episodes are unions of whole vasopressor infusions, so a VP infusion is either inside
    -- the index episode or outside it: testing its start is enough
    select
        e.stay_id,
        min(v.starttime) as vp_first_start_time
    from index_episodes as e
    inner join vasopressin_infusions as v
        on v.stay_id = e.stay_id
        and v.starttime >= e.episode_start_time
        and v.starttime <= e.episode_end_time
    group by e.stay_id
),

final as (
    select
        e.*,
        case
            when f.vp_first_start_time is null then 'ne_only'
            when f.vp_first_start_time < e.ne_start_time then 'vp_before_ne'
            else 'vp_added'
        end as exposure,
        case when f.vp_first_start_time >= e.ne_start_time then f.vp_first_start_time end as vp_start_time
    from index_episodes as e
    left join first_vp_in_episode as f on f.stay_id = e.stay_id
)

select * from final
