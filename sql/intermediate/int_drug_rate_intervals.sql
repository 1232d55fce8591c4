-- int_drug_rate_intervals: the rate of each drug in force over time, overlaps resolved.
-- Grain: one row per stay, drug and maximal interval [starttime, endtime) during which one
--   source row sets the rate; intervals of one stay and drug never overlap. Instants no row
--   covers have no row.
-- Rule (cohort_spec): at instant t the rate is that of the covering row (starttime <= t <
--   endtime) with the latest starttime; ties: larger orderid, then larger rate. Overlapping
--   rows of one drug are never summed (MetaVision leaves the old row open for a few minutes
--   when a rate change is charted as a new row).
-- Units: same rate columns as stg_inputevents_vasoactive (rate_mcg_kg_min, rate_units_min,
--   rate_ng_kg_min, rate_mcg_min, nee_mcg_kg_min); patientweight_kg of the winning row.
-- Source: stg_inputevents_vasoactive.
with

vasoactive as (
    select * from stg_inputevents_vasoactive
),

timed as (
    -- a row with endtime <= starttime covers no instant under the half-open rule
    select *
    from vasoactive
    where starttime is not null and endtime > starttime
),

boundaries as (
    select stay_id, drug, starttime as boundary_time from timed
    union
    select stay_id, drug, endtime as boundary_time from timed
),

segments as (
    -- elementary segments: no row starts or ends strictly inside one, so one row wins throughout
    select
        stay_id,
        drug,
        boundary_time as segment_start_time,
        lead(boundary_time) over (partition by stay_id, drug order by boundary_time) as segment_end_time
    from boundaries
),

segment_bounds as (
    select * from segments where segment_end_time is not null
),

tie_winners as (
    -- of rows starting at the same instant, the one the tie rule prefers
    select *
    from timed
    qualify row_number() over (
        partition by stay_id, drug, starttime
        order by
            orderid desc nulls last,
            coalesce(rate_mcg_kg_min, rate_units_min, rate_ng_kg_min) desc nulls last,
            source_row desc
    ) = 1
),

timeline as (
    -- segment starts and row starts on one time line; a row start sorts before a segment
    -- starting at the same instant (starttime <= segment start)
    select stay_id, drug, starttime as event_time, 0 as event_kind, source_row, endtime,
        null::timestamp as segment_end_time
    from tie_winners
    union all
    select stay_id, drug, segment_start_time, 1, null::bigint, null::timestamp, segment_end_time
    from segment_bounds
),

latest_started as (
    -- fast path (one window pass, no range join): the row with the latest start at or before
    -- the segment start. If it still covers the segment it is the winner by definition.
    -- (An ASOF join does the same but is ~30x slower on tables created in the same transaction.)
    select
        stay_id,
        drug,
        segment_start_time,
        segment_end_time,
        source_row,
        candidate_endtime
    from (
        select
            stay_id,
            drug,
            event_kind,
            event_time as segment_start_time,
            segment_end_time,
            last_value(source_row ignore nulls) over w as source_row,
            last_value(endtime ignore nulls) over w as candidate_endtime
        from timeline
        window w as (
            partition by stay_id, drug order by event_time, event_kind
            rows between unbounded preceding and current row
        )
    )
    where event_kind = 1
),

won_by_latest as (
    select stay_id, drug, segment_start_time, segment_end_time, source_row
    from latest_started
    where candidate_endtime > segment_start_time
),

residual_segments as (
    -- the latest-started row has already ended: an earlier, longer row may still cover the
    -- segment (or none does, a gap). Rare, so the exact range join runs on these only.
    select stay_id, drug, segment_start_time, segment_end_time
    from latest_started
    where candidate_endtime is null or candidate_endtime <= segment_start_time
),

won_by_earlier as (
    select
        s.stay_id,
        s.drug,
        s.segment_start_time,
        s.segment_end_time,
        r.source_row
    from residual_segments as s
    inner join timed as r
        on r.stay_id = s.stay_id
        and r.drug = s.drug
        and r.starttime <= s.segment_start_time
        and r.endtime > s.segment_start_time
    qualify row_number() over (
        partition by s.stay_id, s.drug, s.segment_start_time
        order by
            r.starttime desc,
            r.orderid desc nulls last,
            coalesce(r.rate_mcg_kg_min, r.rate_units_min, r.rate_ng_kg_min) desc nulls last,
            r.source_row desc
    ) = 1
),

winning_row as (
    select * from won_by_latest
    union all
    select * from won_by_earlier
),

islands as (
    -- consecutive segments won by the same row form one interval
    select
        *,
        case
            when lag(source_row) over w = source_row
                and lag(segment_end_time) over w = segment_start_time then 0
            else 1
        end as is_new_interval
    from winning_row
    window w as (partition by stay_id, drug order by segment_start_time)
),

numbered as (
    select
        *,
        sum(is_new_interval) over (
            partition by stay_id, drug order by segment_start_time
            rows between unbounded preceding and current row
        ) as interval_seq
    from islands
),

merged as (
    select
        stay_id,
        drug,
        interval_seq,
        source_row,
        min(segment_start_time) as starttime,
        max(segment_end_time) as endtime
    from numbered
    group by stay_id, drug, interval_seq, source_row
),

final as (
    select
        m.stay_id,
        r.subject_id,
        r.hadm_id,
        m.drug,
        r.role,
        r.itemid,
        m.interval_seq,
        m.starttime,
        m.endtime,
        m.source_row,
        r.orderid,
        r.patientweight_kg,
        r.rate_mcg_kg_min,
        r.rate_units_min,
        r.rate_ng_kg_min,
        r.rate_mcg_min,
        r.nee_mcg_kg_min,
        r.is_infusing
    from merged as m
    inner join timed as r on r.source_row = m.source_row
)

select * from final
