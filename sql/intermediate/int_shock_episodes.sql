-- int_shock_episodes: shock episodes, the union of vasopressor infusions of a stay.
-- Grain: one row per stay and episode: vasopressor infusions (concept role 'vasopressor':
--   norepinephrine, vasopressin, epinephrine, phenylephrine, dopamine, angiotensin II; not the
--   inotropes) whose gaps are <= study_param.episodes_shock_episode_gap_hours.
-- Units: episode_start_time/episode_end_time (timestamps), n_infusions (count).
-- Source: int_drug_infusions, study_param.
with

infusions as (
    select * from int_drug_infusions
),

params as (
    select episodes_shock_episode_gap_hours from study_param
),

vasopressor_infusions as (
    -- dobutamine and milrinone support contractility, not vascular tone: no shock episode alone
    select * from infusions where role = 'vasopressor'
),

with_previous_end as (
    select
        *,
        max(endtime) over (
            partition by stay_id
            order by starttime, endtime, drug, infusion_seq
            rows between unbounded preceding and 1 preceding
        ) as previous_max_endtime
    from vasopressor_infusions
),

flagged as (
    select
        w.*,
        case
            when w.previous_max_endtime is null then 1
            when w.starttime > w.previous_max_endtime + to_hours(p.episodes_shock_episode_gap_hours) then 1
            else 0
        end as is_new_episode
    from with_previous_end as w
    cross join params as p
),

numbered as (
    select
        *,
        sum(is_new_episode) over (
            partition by stay_id
            order by starttime, endtime, drug, infusion_seq
            rows between unbounded preceding and current row
        ) as episode_seq
    from flagged
),

final as (
    select
        stay_id,
        any_value(subject_id) as subject_id,
        any_value(hadm_id) as hadm_id,
        episode_seq,
        min(starttime) as episode_start_time,
        max(endtime) as episode_end_time,
        count(*) as n_infusions
    from numbered
    group by stay_id, episode_seq
)

select * from final
