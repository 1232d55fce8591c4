-- mart_hourly_panel: the hourly person-time panel of the target-trial emulation (pipeline/tte).
-- Grain: one row per cohort stay (mart_cohort) and hour from time zero (index_time): hour h
--   covers [index_time + h h, index_time + (h + 1) h), h = 0 .. tte_decision_window_hours - 1,
--   up to and including the hour of death (no row starts after death).
-- Columns: is_alive_at_start (true on every row by construction, kept for the contract);
--   is_death_in_hour; ne_rate_mcg_kg_min / ne_rate_mcg_min = the highest NE rate in force during
--   the hour (0 = no NE); nee_dose_mcg_kg_min = sum over the non-VP vasopressors of each drug's
--   highest NE-equivalent rate in the hour (an upper bound of the instantaneous sum; VP is the
--   treatment, so it is left out); map_mmhg / lactate_mmol_l = last value at or before the hour
--   start (from [index_time - lookback] on, carried forward, null if none) with its age in hours;
--   has_other_vasopressor = a vasopressor other than NE and VP infusing during the hour;
--   is_vp_start_hour / has_vp_before = the stay's first infusing VP row starts in / before the
--   hour; is_map_assessable / is_lactate_assessable = the source has chartevents / labevents
--   (false: the value is null on every row because it was never measurable, not imputed).
-- Units: in the column names (_mcg_kg_min, _mcg_min, _mmhg, _mmol_l, _hours); *_time timestamps.
-- Source: mart_cohort, int_drug_rate_intervals, stg_chartevents_map, stg_labevents_lactate,
--   source_table, study_param (tte_decision_window_hours, cohort_map_lookback_hours,
--   cohort_lactate_lookback_hours).
with

cohort as (
    select * from mart_cohort
),

rate_intervals as (
    select * from int_drug_rate_intervals
),

map as (
    select * from stg_chartevents_map
),

lactate as (
    select * from stg_labevents_lactate
),

sources as (
    select * from source_table
),

params as (
    select * from study_param
),

hour_numbers as (
    select unnest(generate_series(0, cast(p.tte_decision_window_hours as integer) - 1)) as hour
    from params as p
),

hours as (
    -- the hour grid, stopped at death (the hour containing death is the last row)
    select
        c.stay_id,
        c.subject_id,
        n.hour,
        c.index_time + to_hours(n.hour) as hour_start_time,
        c.index_time + to_hours(n.hour + 1) as hour_end_time,
        c.death_time
    from cohort as c
    cross join hour_numbers as n
    where c.death_time is null or c.death_time >= c.index_time + to_hours(n.hour)
),

interval_hours as (
    -- each rate interval of a cohort stay with the hours of the grid it may overlap: a superset
    -- (one hour wider each side than the arithmetic says, so rounding of the hour number can
    -- only add candidates), tested exactly in drug_hours. Joining every hour of a stay to every
    -- interval of the stay instead made rows x intervals pairs (issue 16: most of the
    -- cohort step's time at 30k stays).
    select
        i.stay_id,
        i.drug,
        i.role,
        i.starttime,
        i.endtime,
        i.rate_mcg_kg_min,
        i.rate_mcg_min,
        i.nee_mcg_kg_min,
        i.is_infusing,
        unnest(generate_series(
            greatest(0, cast(floor(date_diff('second', c.index_time, i.starttime) / 3600.0) as integer) - 1),
            least(cast(p.tte_decision_window_hours as integer) - 1,
                  cast(floor(date_diff('second', c.index_time, i.endtime) / 3600.0) as integer) + 1)
        )) as hour
    from rate_intervals as i
    inner join cohort as c on c.stay_id = i.stay_id
    cross join params as p
    where i.endtime > c.index_time
        and i.starttime < c.index_time + to_hours(p.tte_decision_window_hours)
),

drug_hours as (
    -- each drug's highest rate in force during the hour
    select
        h.stay_id,
        h.hour,
        i.drug,
        i.role,
        max(i.rate_mcg_kg_min) as rate_mcg_kg_min,
        max(i.rate_mcg_min) as rate_mcg_min,
        max(i.nee_mcg_kg_min) as nee_mcg_kg_min,
        bool_or(i.is_infusing) as is_infusing
    from hours as h
    inner join interval_hours as i
        on i.stay_id = h.stay_id
        and i.hour = h.hour
        and i.starttime < h.hour_end_time
        and i.endtime > h.hour_start_time
    group by h.stay_id, h.hour, i.drug, i.role
),

doses as (
    select
        stay_id,
        hour,
        max(case when drug = 'norepinephrine' then rate_mcg_kg_min end) as ne_rate_mcg_kg_min,
        max(case when drug = 'norepinephrine' and rate_mcg_kg_min > 0 then rate_mcg_min end) as ne_rate_mcg_min,
        sum(case when drug <> 'vasopressin' and role = 'vasopressor' and is_infusing then nee_mcg_kg_min end)
            as nee_dose_mcg_kg_min,
        bool_or(drug <> 'norepinephrine' and drug <> 'vasopressin' and role = 'vasopressor' and is_infusing)
            as has_other_vasopressor
    from drug_hours
    group by stay_id, hour
),

vp_first as (
    select stay_id, min(starttime) as vp_first_start_time
    from rate_intervals
    where drug = 'vasopressin' and is_infusing
    group by stay_id
),

map_points as (
    -- hour starts and MAP measurements of the stay on one time line; at equal times the
    -- measurement sorts first (a value charted at the hour start counts as "at or before")
    select h.stay_id, h.hour, h.hour_start_time as point_time, 1 as point_kind,
        cast(null as double) as value, cast(null as timestamp) as value_time
    from hours as h
    union all
    select c.stay_id, cast(null as integer) as hour, m.charttime as point_time, 0 as point_kind,
        m.map_mmhg as value, m.charttime as value_time
    from cohort as c
    cross join params as p
    inner join map as m
        on m.stay_id = c.stay_id
        and m.charttime >= c.index_time - to_hours(p.cohort_map_lookback_hours)
        and m.charttime <= c.index_time + to_hours(p.tte_decision_window_hours)
),

map_carried as (
    select
        stay_id,
        hour,
        last_value(value ignore nulls) over w as map_mmhg,
        last_value(value_time ignore nulls) over w as map_time
    from map_points
    window w as (
        partition by stay_id order by point_time, point_kind, value
        rows between unbounded preceding and current row
    )
),

lactate_points as (
    select h.stay_id, h.hour, h.hour_start_time as point_time, 1 as point_kind,
        cast(null as double) as value, cast(null as timestamp) as value_time
    from hours as h
    union all
    select c.stay_id, cast(null as integer) as hour, l.charttime as point_time, 0 as point_kind,
        l.lactate_mmol_l as value, l.charttime as value_time
    from cohort as c
    cross join params as p
    inner join lactate as l
        on l.subject_id = c.subject_id
        and l.charttime >= c.index_time - to_hours(p.cohort_lactate_lookback_hours)
        and l.charttime <= c.index_time + to_hours(p.tte_decision_window_hours)
),

lactate_carried as (
    select
        stay_id,
        hour,
        last_value(value ignore nulls) over w as lactate_mmol_l,
        last_value(value_time ignore nulls) over w as lactate_time
    from lactate_points
    window w as (
        partition by stay_id order by point_time, point_kind, value
        rows between unbounded preceding and current row
    )
),

source_flags as (
    select
        coalesce(bool_or(is_available) filter (where table_name = 'chartevents'), false) as has_chartevents,
        coalesce(bool_or(is_available) filter (where table_name = 'labevents'), false) as has_labevents
    from sources
),

final as (
    select
        h.stay_id,
        h.subject_id,
        h.hour,
        h.hour_start_time,
        true as is_alive_at_start,
        coalesce(h.death_time < h.hour_end_time, false) as is_death_in_hour,
        coalesce(d.ne_rate_mcg_kg_min, 0.0) as ne_rate_mcg_kg_min,
        coalesce(d.ne_rate_mcg_min, 0.0) as ne_rate_mcg_min,
        coalesce(d.nee_dose_mcg_kg_min, 0.0) as nee_dose_mcg_kg_min,
        m.map_mmhg,
        date_diff('second', m.map_time, h.hour_start_time) / 3600.0 as map_age_hours,
        l.lactate_mmol_l,
        date_diff('second', l.lactate_time, h.hour_start_time) / 3600.0 as lactate_age_hours,
        coalesce(d.has_other_vasopressor, false) as has_other_vasopressor,
        coalesce(v.vp_first_start_time >= h.hour_start_time and v.vp_first_start_time < h.hour_end_time, false)
            as is_vp_start_hour,
        coalesce(v.vp_first_start_time < h.hour_start_time, false) as has_vp_before,
        sf.has_chartevents as is_map_assessable,
        sf.has_labevents as is_lactate_assessable
    from hours as h
    cross join source_flags as sf
    left join doses as d on d.stay_id = h.stay_id and d.hour = h.hour
    left join map_carried as m on m.stay_id = h.stay_id and m.hour = h.hour
    left join lactate_carried as l on l.stay_id = h.stay_id and l.hour = h.hour
    left join vp_first as v on v.stay_id = h.stay_id
)

select * from final order by stay_id, hour
