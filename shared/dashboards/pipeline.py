"""Pipeline metrics over deals, read raw: an organization's 100,000 deals fit partial,
covering indexes (open deals by expected close date, won and lost deals by when). The
funnel reads deal_progress (each deal's furthest stage, kept by triggers) unless the
widget filters deals.

open_deal_value, deal_age_by_stage   now (the range does not apply)
weighted_forecast                   open deals' value x probability by expected close date
win_rate                            won ÷ (won + lost), decided in the range
deals_won_lost                      decided deals by outcome and lost reason
stage_funnel                        deals created in the range: how many reached each open
                                    stage of the pipeline (a won deal passed them all)
"""

from __future__ import annotations

from shared.dashboards.sql import Dim, Query

DEAL_DIMS = {
    "pipeline": Dim("d.pipeline_id::text"),
    "stage": Dim("d.stage_id::text"),
    "agent": Dim("d.assignee_id::text"),
}


def _deals(q: Query, *conditions: str) -> list[str]:
    where = ["d.organization_id = $1::uuid", *conditions, q.filter()]
    if q.spec.dimension == "agent":
        where += ["d.assignee_id is not null", q.only_user("d.assignee_id")]
    return where


def open_deal_value(q: Query) -> str:
    return q.grouped(
        source="public.deals d",
        where=_deals(q, "d.status = 'open'"),
        ts=None,
        value="coalesce(sum(d.value), 0)::float8",
        dims=DEAL_DIMS,
    )


def deal_age_by_stage(q: Query) -> str:
    """Average age in days of the open deals in each stage."""
    return q.grouped(
        source="public.deals d",
        where=_deals(q, "d.status = 'open'"),
        ts=None,
        value="avg(extract(epoch from now() - d.created_at) / 86400)::float8",
        dims=DEAL_DIMS,
    )


def weighted_forecast(q: Query) -> str:
    """Open deals' value x probability, bucketed by their expected close date (a date:
    no zone)."""
    bucket = (
        f"date_trunc('{q.spec.grain}', d.expected_close_date::timestamp)"
        if q.spec.grain
        else "null::timestamp"
    )
    dim = DEAL_DIMS[q.spec.dimension] if q.spec.dimension else Dim("null::text")
    start = q.params.add(q.spec.window.start, "date")
    end = q.params.add(q.spec.window.end, "date")
    where = _deals(q, "d.status = 'open'", f"d.expected_close_date between {start} and {end}")
    return (
        f"select {bucket} as bucket, {dim.key} as key,"
        " coalesce(sum(d.value * d.probability / 100.0), 0)::float8 as value"
        f" from public.deals d where {' and '.join(where)} group by 1, 2"
    )


def _decided(q: Query) -> str:
    """Deals decided in the range, one row each: (at, won, reason, and the dimensions)."""
    won = " and ".join(_deals(q, "d.won_at is not null", q.in_range("d.won_at")))
    lost = " and ".join(_deals(q, "d.lost_at is not null", q.in_range("d.lost_at")))
    columns = "d.pipeline_id, d.assignee_id"  # in the won and lost indexes: no heap
    return (
        f"(select d.won_at as at, true as won, null::text as lost_reason, {columns}"
        f" from public.deals d where {won}"
        f" union all select d.lost_at, false, d.lost_reason, {columns}"
        f" from public.deals d where {lost}) d"
    )


def win_rate(q: Query) -> str:
    return q.grouped(
        source=_decided(q),
        where=["true"],
        ts="d.at",
        value="avg(d.won::int)::float8",
        dims=DEAL_DIMS,
    )


def deals_won_lost(q: Query) -> str:
    dims = {
        **DEAL_DIMS,
        "reason": Dim("case when d.won then 'won' else coalesce(d.lost_reason, '(no reason)') end"),
        "outcome": Dim("case when d.won then 'won' else 'lost' end"),
    }
    return q.grouped(source=_decided(q), where=["true"], ts="d.at", value="count(*)", dims=dims)


def _furthest_raw(q: Query, pipeline: str) -> str:
    """Deals per (furthest open position, won) from the raw rows, for a filter on deals.
    A deal's stage changes all come after it was created, so only the range's are read,
    each deal's furthest open stage first (a hash aggregate over one index-only scan)."""
    deals = " and ".join(_deals(q, f"d.pipeline_id = {pipeline}", q.in_range("d.created_at")))
    return f"""
      with moved as (
        select c.deal_id, max(s.position) filter (where s.kind = 'open') as position
          from public.deal_stage_changes c
          join public.stages s on s.organization_id = c.organization_id and s.id = c.to_stage_id
         where c.organization_id = $1::uuid and c.changed_at >= {q.start}
         group by c.deal_id
      )
      select greatest(m.position, case when s.kind = 'open' then s.position end) as position,
             d.status = 'won' as won, count(*) as deals
        from public.deals d
        join public.stages s on s.organization_id = d.organization_id and s.id = d.stage_id
        left join moved m on m.deal_id = d.id
       where {deals}
       group by 1, 2"""


def _furthest_rolled_up(q: Query, pipeline: str) -> str:
    """The same from deal_progress (each deal's furthest position and outcome, kept by
    triggers): one index-only range scan."""
    return (
        "select p.furthest_position as position, p.won, count(*) as deals"
        " from public.deal_progress p where p.organization_id = $1::uuid"
        f" and p.pipeline_id = {pipeline} and {q.in_range('p.created_at')} group by 1, 2"
    )


def stage_funnel(q: Query) -> str:
    """Key: each open stage of the pipeline (options.pipeline_id, else the default), then
    "won"; value: deals created in the range that reached it (a won deal passed them all)."""
    chosen = q.spec.options.get("pipeline_id")
    pipeline = (
        q.params.add(chosen, "uuid")
        if chosen
        else "(select p.id from public.pipelines p where p.organization_id = $1::uuid"
        " and p.is_default)"
    )
    furthest = _furthest_raw if q.spec.filter is not None else _furthest_rolled_up
    # tally: deals per furthest position, a handful of rows
    return f"""
    with tally as materialized ({furthest(q, pipeline)})
    select null::timestamp as bucket, s.id::text as key,
           coalesce(sum(t.deals) filter (where t.won or t.position >= s.position), 0)::bigint
             as value
      from public.stages s cross join tally t
     where s.organization_id = $1::uuid and s.pipeline_id = {pipeline} and s.kind = 'open'
     group by s.id
    union all
    select null::timestamp, 'won', coalesce(sum(t.deals) filter (where t.won), 0)::bigint
      from tally t
    """
