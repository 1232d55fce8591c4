-- int_audit_high_dose_runs: periods of high vasopressor dose in each cohort stay's index episode.
-- Grain: one row per cohort stay, kind and run. Kinds:
--   'ne_above_delayed': NE > classification_timing_delayed_above_ne_mcg_kg_min or NE mcg/min >
--     classification_timing_delayed_above_ne_mcg_min (the "delayed" doses; rules vp_missed);
--   'nee_high': NE-equivalent of all vasopressors >= audit_hydrocortisone_nee_mcg_kg_min (rule
--     hydrocortisone).
--   High segments separated by at most episodes_drug_gap_minutes form one run (a bag change or a
--   brief dip does not restart the clock).
-- Units: run_start_time/run_end_time (timestamps), run_hours (hours, gaps included).
-- Source: int_audit_episode_segments, study_param.
with

segments as (
    select * from int_audit_episode_segments
),

params as (
    select * from study_param
),

high_segments as (
    select
        s.stay_id,
        'ne_above_delayed' as kind,
        s.segment_start_time,
        s.segment_end_time
    from segments as s
    cross join params as p
    where s.ne_rate_mcg_kg_min > p.classification_timing_delayed_above_ne_mcg_kg_min
        or s.ne_rate_mcg_min > p.classification_timing_delayed_above_ne_mcg_min
    union all
    select
        s.stay_id,
        'nee_high' as kind,
        s.segment_start_time,
        s.segment_end_time
    from segments as s
    cross join params as p
    where s.nee_mcg_kg_min >= p.audit_hydrocortisone_nee_mcg_kg_min
),

flagged as (
    select
        h.*,
        case
            when lag(h.segment_end_time) over w is null then 1
            when h.segment_start_time > lag(h.segment_end_time) over w
                + to_minutes(p.episodes_drug_gap_minutes) then 1
            else 0
        end as is_new_run
    from high_segments as h
    cross join params as p
    window w as (partition by h.stay_id, h.kind order by h.segment_start_time)
),

numbered as (
    select
        *,
        sum(is_new_run) over (
            partition by stay_id, kind order by segment_start_time
            rows between unbounded preceding and current row
        ) as run_seq
    from flagged
),

final as (
    select
        stay_id,
        kind,
        cast(run_seq as bigint) as run_seq,
        min(segment_start_time) as run_start_time,
        max(segment_end_time) as run_end_time,
        date_diff('second', min(segment_start_time), max(segment_end_time)) / 3600.0 as run_hours
    from numbered
    group by stay_id, kind, cast(run_seq as bigint)
)

select * from final
