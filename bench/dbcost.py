"""What a run costs the database and the processes around it: write-ahead log and CPU.

WAL bytes come from the WAL position (pg_current_wal_lsn) around the run, records
from pg_stat_wal; both are cluster-wide, so a run must be the only writer (the bench's
own cluster is). A backend reports its WAL records when it exits or has idled about a
second, so the closing reading is taken after the run's connections are closed. CPU
comes from
/proc/<pid>/stat: a process tree's user+system time, where the children that have
exited during the run are counted through their parent's cutime/cstime (PostgreSQL's
postmaster reaps every backend). Local clusters only: through a remote --db-url the
CPU figure is unknown and printed as such.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import asyncpg

TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # gone meanwhile: its time is in its parent's cutime now
        return None
    return text[text.rindex(")") + 2 :].split()  # fields from 3 (state) on


def tree_cpu_seconds(root: int) -> float:
    """User+system CPU of `root`, of its reaped children and of its live descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))):
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    total, todo, first = 0, [root], True
    while todo:
        pid = todo.pop()
        fields = _stat(pid)
        if fields is not None:
            # utime, stime (fields 14-15); the root also counts cutime, cstime (16-17)
            total += sum(int(f) for f in fields[11 : 15 if first else 13])
        first = False
        todo.extend(children.get(pid, []))
    return total / TICKS


async def postmaster_pid(conn: asyncpg.Connection) -> int | None:
    """The postmaster of the cluster behind `conn`, when it runs on this machine."""
    # Null over a Unix socket; a loopback address over TCP on this machine.
    local = await conn.fetchval("select coalesce(inet_server_addr() << '127.0.0.0/8'"
                                " or inet_server_addr() = '::1', true)")  # fmt: skip
    fields = _stat(conn.get_server_pid()) if local else None
    return int(fields[1]) if fields else None


@dataclass(frozen=True)
class Reading:
    wal_records: int
    wal_bytes: int
    pg_cpu: float | None
    rows: dict[str, int]  # table → rows inserted, updated and deleted so far


# What makes the WAL: each row written is a record, and so is each index entry.
ROWS_WRITTEN = """
select t.schemaname || '.' || t.relname, t.n_tup_ins + t.n_tup_upd + t.n_tup_del,
       (select count(*) from pg_index i where i.indrelid = t.relid)
from pg_stat_user_tables t
"""


async def read(db_url: str) -> Reading:
    conn = await asyncpg.connect(db_url)
    try:
        row = await conn.fetchrow(
            "select wal_records, pg_current_wal_lsn() - '0/0'::pg_lsn from pg_stat_wal"
        )
        assert row is not None
        records, size = row
        pid = await postmaster_pid(conn)
        rows = {f"{name} ({indexes} idx)": n for name, n, indexes in await conn.fetch(ROWS_WRITTEN)}
        return Reading(int(records), int(size), tree_cpu_seconds(pid) if pid else None, rows)
    finally:
        await conn.close()


def cpu_seconds(before: Reading, after: Reading) -> float | None:
    if before.pg_cpu is None or after.pg_cpu is None:
        return None
    return after.pg_cpu - before.pg_cpu


def per_message(before: Reading, after: Reading, messages: int) -> str:
    records = (after.wal_records - before.wal_records) / messages
    size = (after.wal_bytes - before.wal_bytes) / messages
    cpu = (
        "n/a (remote database)"
        if before.pg_cpu is None or after.pg_cpu is None
        else f"{(after.pg_cpu - before.pg_cpu) / messages * 1000:.2f} ms"
    )
    return f"WAL {size / 1024:5.1f} KB in {records:4.1f} records, PostgreSQL CPU {cpu} per message"


def rows_per_message(before: Reading, after: Reading, messages: int, top: int = 8) -> str:
    """The tables written per message, most first: where the WAL records come from."""
    written = {t: (n - before.rows.get(t, 0)) / messages for t, n in after.rows.items()}
    busiest = sorted(((n, t) for t, n in written.items() if n >= 0.05), reverse=True)[:top]
    return "rows written per message: " + ", ".join(f"{t} {n:.1f}" for n, t in busiest)
