-- mart_audit_map_below_65: audit rule map_below_65 - share of vasopressor time in the index
-- episode with MAP below audit_map_target_mmhg (65 mmHg, SSC 2021) is at most
-- audit_map_below_max_fraction.
-- Grain: one row per cohort stay (mart_cohort).
-- Definition: each charted MAP (values at the same charttime averaged: invasive and cuff
--   pressures are often charted together) holds until the next one, for at most
--   audit_map_carry_forward_hours; its time is intersected with segments where a vasopressor
--   infuses. share = time below target / time with a MAP value.
-- Result: not_assessable (no chartevents source, e.g. the MIMIC-IV demo; or no MAP during
--   vasopressor time), pass (share <= limit), fail.
-- Units: mmHg, hours, share 0-1.
-- Source: mart_cohort, int_audit_episode_segments, stg_chartevents_map, source_table, study_param.
with

cohort as (
    select * from mart_cohort
),

segments as (
    select * from int_audit_episode_segments
),

map as (
    select * from stg_chartevents_map
),

sources as (
    select * from source_table
),

params as (
    select * from study_param
),

has_source as (
    select coalesce(bool_or(is_available), false) as has_map_source
    from sources
    where table_name = 'chartevents'
),

map_per_time as (
    select m.stay_id, m.charttime, avg(m.map_mmhg) as map_mmhg
    from map as m
    where m.stay_id in (select stay_id from cohort)
    group by m.stay_id, m.charttime
),

map_intervals as (
    select
        m.stay_id,
        m.map_mmhg,
        m.charttime as value_start_time,
        -- least() skips a null: the stay's last value is carried forward its full time
        least(
            lead(m.charttime) over (partition by m.stay_id order by m.charttime),
            m.charttime + to_microseconds(cast(p.audit_map_carry_forward_hours * 3600e6 as bigint))
        ) as value_end_time
    from map_per_time as m
    cross join params as p
),

overlap as (
    select
        s.stay_id,
        mi.map_mmhg,
        date_diff('second', greatest(s.segment_start_time, mi.value_start_time),
                  least(s.segment_end_time, mi.value_end_time)) / 3600.0 as hours
    from segments as s
    inner join map_intervals as mi
        on mi.stay_id = s.stay_id
        and mi.value_start_time < s.segment_end_time
        and mi.value_end_time > s.segment_start_time
    where s.is_vasopressor_running
),

per_stay as (
    select
        o.stay_id,
        sum(o.hours) as hours_with_map,
        coalesce(sum(o.hours) filter (where o.map_mmhg < p.audit_map_target_mmhg), 0) as hours_below
    from overlap as o
    cross join params as p
    group by o.stay_id
),

final as (
    select
        c.stay_id,
        'map_below_65' as rule,
        case
            when not h.has_map_source then 'not_assessable'
            when coalesce(m.hours_with_map, 0) <= 0 then 'not_assessable'
            when m.hours_below / m.hours_with_map <= p.audit_map_below_max_fraction then 'pass'
            else 'fail'
        end as result,
        case
            when not h.has_map_source then 'no chartevents source table'
            when coalesce(m.hours_with_map, 0) <= 0 then 'no MAP charted while on vasopressors'
            else printf('MAP < %.0f mmHg for %.0f%% of %.1f h on vasopressors with a MAP (limit %.0f%%)',
                p.audit_map_target_mmhg, 100 * m.hours_below / m.hours_with_map, m.hours_with_map,
                100 * p.audit_map_below_max_fraction)
        end as detail
    from cohort as c
    cross join params as p
    cross join has_source as h
    left join per_stay as m on m.stay_id = c.stay_id
)

select * from final
