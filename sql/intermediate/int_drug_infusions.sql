-- int_drug_infusions: continuous infusions of each vasoactive drug.
-- Grain: one row per stay, drug and infusion: infusing rows (rate > 0) of one drug whose gaps
--   are <= study_param.episodes_drug_gap_minutes are one infusion (MetaVision closes and
--   reopens rows at bag changes and rate changes, minutes apart).
-- Units: starttime/endtime (timestamps), n_rows (count).
-- Source: stg_inputevents_vasoactive, study_param.
with

vasoactive as (
    select * from stg_inputevents_vasoactive
),

params as (
    select episodes_drug_gap_minutes from study_param
),

infusing as (
    -- rows with rate 0/null deliver nothing; rows with endtime <= starttime cover no time
    select *
    from vasoactive
    where is_infusing and endtime > starttime
),

with_previous_end as (
    select
        *,
        -- overlapping rows: compare with the latest end of every earlier row, not just the last
        max(endtime) over (
            partition by stay_id, drug
            order by starttime, endtime, source_row
            rows between unbounded preceding and 1 preceding
        ) as previous_max_endtime
    from infusing
),

flagged as (
    select
        w.*,
        case
            when w.previous_max_endtime is null then 1
            when w.starttime > w.previous_max_endtime + to_minutes(p.episodes_drug_gap_minutes) then 1
            else 0
        end as is_new_infusion
    from with_previous_end as w
    cross join params as p
),

numbered as (
    select
        *,
        sum(is_new_infusion) over (
            partition by stay_id, drug
            order by starttime, endtime, source_row
            rows between unbounded preceding and current row
        ) as infusion_seq
    from flagged
),

final as (
    select
        stay_id,
        any_value(subject_id) as subject_id,
        any_value(hadm_id) as hadm_id,
        drug,
        any_value(role) as role,
        infusion_seq,
        min(starttime) as starttime,
        max(endtime) as endtime,
        count(*) as n_rows
    from numbered
    group by stay_id, drug, infusion_seq
)

select * from final
