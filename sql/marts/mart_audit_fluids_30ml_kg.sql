-- mart_audit_fluids_30ml_kg: audit rule fluids_30ml_kg - at least audit_fluids_ml_kg (30 mL/kg)
-- of crystalloid in [ne_start_time - audit_fluids_window_before_hours, ne_start_time +
-- audit_fluids_window_after_hours] (SSC 2021: 30 mL/kg within the first 3 h).
-- Grain: one row per cohort stay (mart_cohort).
-- Definition: crystalloid rows of the stay (stg_inputevents_crystalloid); a row that lies partly in the window counts pro rata of its duration (a 24 h
--   maintenance infusion contributes only its hours inside the window); a row with no duration
--   counts whole if it starts in the window. Weight: patientweight of the NE row in force at
--   ne_start_time. Fluids given before ICU admission (e.g. in the ED) are not in inputevents.
-- Result: not_assessable (no weight on the first NE row, or a source without crystalloid
--   records: source_table row 'audit_crystalloids' = false, e.g. eICU-CRD), pass, fail.
-- Units: mL, kg, mL/kg.
-- Source: mart_cohort, int_drug_rate_intervals, stg_inputevents_crystalloid, study_param,
--   source_table.
with

cohort as (
    select * from mart_cohort
),

rate_intervals as (
    select * from int_drug_rate_intervals
),

crystalloids as (
    select * from stg_inputevents_crystalloid
),

params as (
    select * from study_param
),

windows as (
    select
        c.stay_id,
        c.ne_start_time
            - to_microseconds(cast(p.audit_fluids_window_before_hours * 3600e6 as bigint)) as window_start_time,
        c.ne_start_time
            + to_microseconds(cast(p.audit_fluids_window_after_hours * 3600e6 as bigint)) as window_end_time
    from cohort as c
    cross join params as p
),

ne_weight as (
    select
        c.stay_id,
        i.patientweight_kg as weight_kg
    from cohort as c
    inner join rate_intervals as i
        on i.stay_id = c.stay_id
        and i.drug = 'norepinephrine'
        and i.starttime <= c.ne_start_time
        and i.endtime > c.ne_start_time
),

in_window as (
    select
        w.stay_id,
        case
            when x.endtime > x.starttime then x.amount_ml
                * date_diff('second', greatest(x.starttime, w.window_start_time), least(x.endtime, w.window_end_time))
                / date_diff('second', x.starttime, x.endtime)
            else x.amount_ml
        end as volume_ml
    from windows as w
    inner join crystalloids as x
        on x.stay_id = w.stay_id
        and (
            (x.endtime > x.starttime and x.starttime < w.window_end_time and x.endtime > w.window_start_time)
            or (coalesce(x.endtime, x.starttime) <= x.starttime
                and x.starttime >= w.window_start_time and x.starttime <= w.window_end_time)
        )
),

volume as (
    select stay_id, sum(volume_ml) as volume_ml
    from in_window
    group by stay_id
),

has_source as (
    -- no row 'audit_crystalloids' (MIMIC-IV): crystalloids are in inputevents
    select coalesce(bool_and(is_available) filter (where table_name = 'audit_crystalloids'), true)
        as has_crystalloid_source
    from source_table
),

final as (
    select
        c.stay_id,
        'fluids_30ml_kg' as rule,
        case
            when not hs.has_crystalloid_source then 'not_assessable'
            when coalesce(nw.weight_kg, 0) <= 0 then 'not_assessable'
            when coalesce(v.volume_ml, 0) / nw.weight_kg >= p.audit_fluids_ml_kg then 'pass'
            else 'fail'
        end as result,
        case
            when not hs.has_crystalloid_source then 'the source has no crystalloid records'
            when coalesce(nw.weight_kg, 0) <= 0 then 'no patient weight on the first NE row'
            else printf('%.0f mL crystalloid = %.1f mL/kg from %.0f h before to %.0f h after NE start (target %.0f mL/kg)',
                coalesce(v.volume_ml, 0), coalesce(v.volume_ml, 0) / nw.weight_kg,
                p.audit_fluids_window_before_hours, p.audit_fluids_window_after_hours, p.audit_fluids_ml_kg)
        end as detail
    from cohort as c
    cross join params as p
    cross join has_source as hs
    left join ne_weight as nw on nw.stay_id = c.stay_id
    left join volume as v on v.stay_id = c.stay_id
)

select * from final
