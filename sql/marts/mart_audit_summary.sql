-- mart_audit_summary: audit results counted per rule, care unit and period.
-- Grain: one row per rule, care unit (mart_cohort.first_careunit) and period.
-- Period (study_param.study_period): 'anchor_year_group' (MIMIC shifts dates per patient, so
--   only anchor_year_group is real time), 'calendar_month' ('YYYY-MM' of index_time) or
--   'calendar_quarter' ('YYYY-Qn' of index_time), for a hospital's unshifted data. Both
--   calendar labels sort as strings in time order.
-- Columns: n_pass, n_fail, n_not_applicable, n_not_assessable (stays), adherence =
--   n_pass / (n_pass + n_fail) (share 0-1; null when no stay passed or failed).
-- Source: mart_audit, mart_cohort, study_param.
with

audit as (
    select * from mart_audit
),

cohort as (
    select * from mart_cohort
),

params as (
    select * from study_param
),

labelled as (
    select
        a.rule,
        c.first_careunit as care_unit,
        case p.study_period
            when 'anchor_year_group' then c.anchor_year_group
            when 'calendar_month' then strftime(c.index_time, '%Y-%m')
            when 'calendar_quarter' then strftime(c.index_time, '%Y') || '-Q' || cast(quarter(c.index_time) as varchar)
        end as period,
        a.result
    from audit as a
    inner join cohort as c on c.stay_id = a.stay_id
    cross join params as p
),

counted as (
    select
        rule,
        care_unit,
        period,
        count(*) filter (where result = 'pass') as n_pass,
        count(*) filter (where result = 'fail') as n_fail,
        count(*) filter (where result = 'not_applicable') as n_not_applicable,
        count(*) filter (where result = 'not_assessable') as n_not_assessable
    from labelled
    group by rule, care_unit, period
),

final as (
    select
        *,
        n_pass / nullif(n_pass + n_fail, 0) as adherence
    from counted
)

select * from final order by rule, care_unit, period
