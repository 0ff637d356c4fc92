"""What every metric's SQL shares: the question (`Spec`), its parameters, local-time
buckets and ranges, dimensions and the widget's filter.

A metric's statement returns rows (bucket, key, value): `bucket` the local start of
a day, week or month (a timestamp without zone) or null, `key` the dimension's value
as text or null. Buckets are `date_trunc(grain, ts at time zone tz)`: local days,
weeks from Monday and months, whatever DST does; range bounds are local midnights
turned into instants with the zone's rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from uuid import UUID

from shared.dashboards.ranges import Window
from shared.filters import Catalog, Node, compile_filter
from shared.sql import Params


@dataclass(frozen=True)
class Spec:
    """One widget's question, validated."""

    organization_id: UUID
    timezone: str
    window: Window
    grain: str | None  # bucket by local day, week or month; None: one figure per key
    dimension: str | None
    filter: Node | None = None
    catalog: Catalog | None = None
    options: dict[str, Any] = field(default_factory=dict)
    only_user: UUID | None = None  # an agent who may see their own team figures only
    rollups: bool = True  # the zone's offsets are whole hours: hourly rollups are exact


@dataclass(frozen=True)
class Dim:
    key: str  # SQL of the key, as text
    join: str = ""  # what the key needs joined


class Query:
    """Placeholders for one statement: $1 the organization; the timezone and the range's
    bounds are added when a builder first uses them (PostgreSQL refuses unused ones)."""

    def __init__(self, spec: Spec, params: Params | None = None) -> None:
        """`params`: another Query's, to put both questions in one statement (the
        organization stays $1; this one's range gets placeholders of its own)."""
        self.spec = spec
        self.params = params or Params(spec.organization_id)
        self.org = "$1::uuid"
        self._once: dict[str, str] = {}

    def _param(self, name: str, value: object, cast: str) -> str:
        if name not in self._once:
            self._once[name] = self.params.add(value, cast)
        return self._once[name]

    @property
    def tz(self) -> str:
        return self._param("tz", self.spec.timezone, "text")

    @property
    def start(self) -> str:
        day = self._param("start", self.spec.window.start, "date")
        return f"({day}::timestamp at time zone {self.tz})"

    @property
    def end(self) -> str:  # exclusive: the local midnight after the last day
        day = self._param("end", self.spec.window.end + timedelta(days=1), "date")
        return f"({day}::timestamp at time zone {self.tz})"

    def in_range(self, ts: str) -> str:
        return f"{ts} >= {self.start} and {ts} < {self.end}"

    def bucket(self, ts: str) -> str:
        if self.spec.grain is None:
            return "null::timestamp"
        return f"date_trunc('{self.spec.grain}', {ts} at time zone {self.tz})"

    def filter(self) -> str:
        if self.spec.filter is None or self.spec.catalog is None:
            return "true"
        return compile_filter(self.spec.filter, self.spec.catalog, self.params)

    def conversation_filter(self, alias: str) -> str:
        """The filter (on conversations) for rows of `alias` naming a conversation."""
        if self.spec.filter is None:
            return "true"
        return (
            "exists (select 1 from public.conversations v where v.organization_id = "
            f"{alias}.organization_id and v.id = {alias}.conversation_id and {self.filter()})"
        )

    def only_user(self, column: str) -> str:
        if self.spec.only_user is None:
            return "true"
        return f"{column} = {self.params.add(self.spec.only_user, 'uuid')}"

    def grouped(
        self,
        *,
        source: str,
        where: list[str],
        ts: str | None,
        value: str,
        dims: dict[str, Dim],
    ) -> str:
        """select bucket, key, value from `source` where … group by bucket and key."""
        dim = dims[self.spec.dimension] if self.spec.dimension else Dim("null::text")
        bucket = self.bucket(ts) if ts is not None else "null::timestamp"
        return (
            f"select {bucket} as bucket, {dim.key} as key, {value} as value"
            f" from {source} {dim.join} where {' and '.join(where)} group by 1, 2"
        )


def channel_dims(alias: str) -> dict[str, Dim]:
    """Dimensions of rows that name a channel account."""
    return {
        "channel": Dim(
            "a.channel::text",
            f"join public.channel_accounts a on a.organization_id = {alias}.organization_id"
            f" and a.id = {alias}.channel_account_id",
        ),
        "channel_account": Dim(f"{alias}.channel_account_id::text"),
    }
