"""`connectgain`: the local database, migrations, the function server and dev helpers."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence

import asyncpg
from pydantic import ValidationError

from shared.settings import Settings, get_settings, local_api_url
from shared.tooling.cluster import Cluster, ClusterError
from shared.tooling.entry import ServeError
from shared.tooling.migrate import MigrationError, MigrationReport, migrate
from shared.tooling.schedule_sql import ScheduleError, Secrets, install_schedule, schedule_sql


def local_cluster(settings: Settings) -> Cluster:
    return Cluster(data_dir=settings.data_dir, port=settings.db_port)


def _say(*lines: str) -> None:
    for line in lines:
        print(line, flush=True)


def _print_report(report: MigrationReport) -> None:
    if report.local:
        _say(f"Supabase stand-ins: {len(report.local)} files (local database)")
    _say(
        f"Migrations applied: {len(report.applied)}"
        + (f" ({', '.join(report.applied)})" if report.applied else " (up to date)")
    )
    if report.seeded:
        _say("Seed applied: supabase/seed.sql")


def _run_migrate(settings: Settings, db_url: str | None, seed: bool = False) -> None:
    report = asyncio.run(
        migrate(db_url or settings.database_url, settings.project_dir / "supabase", seed=seed)
    )
    _print_report(report)


async def _recreate_database(cluster: Cluster) -> None:
    conn = await asyncpg.connect(cluster.url("template1"))
    try:
        await conn.execute("drop database if exists postgres with (force)")
        await conn.execute("create database postgres")
    finally:
        await conn.close()


def cmd_db(args: argparse.Namespace, settings: Settings) -> None:
    cluster = local_cluster(settings)
    action: str = args.action
    if action == "start":
        _say(*cluster.start())
    elif action == "stop":
        _say(cluster.stop())
    elif action == "status":
        _say(cluster.status())
    elif action == "url":
        _say(cluster.url())
    elif action == "psql":
        if not cluster.running():
            raise ClusterError("The database is not running; start it with: connectgain db start")
        os.execv(cluster.bin.tool("psql"), ["psql", cluster.url()])  # noqa: S606
    elif action == "reset":
        _say(*cluster.start())
        asyncio.run(_recreate_database(cluster))
        _say("Recreated database 'postgres'")
        _run_migrate(settings, cluster.url(), seed=True)
    elif action == "migrate":
        _run_migrate(settings, args.db_url)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> None:
    if args.port:
        # --port moves what follows the API port too (SUPABASE_URL, the public base URL).
        settings = settings.on_ports(api_port=args.port)
    _serve(args, settings)


def _serve(args: argparse.Namespace, settings: Settings, banner: Sequence[str] = ()) -> None:
    import uvicorn

    from shared.tooling import entry
    from shared.tooling.serving import FACTORY, UVICORN_OPTIONS

    gateway = entry.build(settings, function=args.function, no_schedule=args.no_schedule)
    port = settings.api_port
    _say(f"Functions on http://{args.host}:{port}/functions/v1/<slug>:")
    _say(*(f"  http://{args.host}:{port}/functions/v1/{slug}" for slug in gateway.slugs))
    if gateway.schedule and args.workers > 1:
        # every worker would run every job: the schedule wants one process (or pg_cron)
        _say("The schedule does not run with --workers above 1.")
    elif gateway.schedule:
        _say("Schedule (UTC; each run's summary is logged):")
        _say(*(f"  {job.cron:<12} {job.slug}" for job in gateway.schedule))
    _say(*banner)
    _log_schedule_runs()
    options = {"host": args.host, "port": port, "log_level": "info", "access_log": args.access_log}
    if args.workers == 1:
        uvicorn.run(gateway, **options, **UVICORN_OPTIONS)
        return
    # Worker processes import the app by name and read their settings from the
    # environment: what the options moved goes there for them.
    os.environ["CONNECTGAIN_API_PORT"] = str(port)
    if args.function:
        os.environ["CONNECTGAIN_FUNCTION"] = args.function
    uvicorn.run(FACTORY, factory=True, workers=args.workers, **options, **UVICORN_OPTIONS)


def _log_schedule_runs() -> None:
    """The scheduler's lines, and the local Auth's mail links, beside uvicorn's (which
    configures only its own loggers)."""
    for logger in map(logging.getLogger, ("connectgain.schedule", "connectgain.local_auth")):
        if logger.handlers:
            continue
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def dev_banner(settings: Settings) -> list[str]:
    """The local stack's URLs and keys, one block, labelled as `supabase start` labels them."""
    api = local_api_url(settings.api_port)
    if settings.jwt_secret is None:
        raise ClusterError("The local stack needs the local JWT secret")
    rows = [
        ("API URL", api),
        ("Functions URL", f"{api}/functions/v1"),
        ("Realtime URL", f"{api.replace('http', 'ws', 1)}/realtime/v1"),
        ("DB URL", settings.database_url),
        ("JWKS URL", settings.jwks_endpoint),
        ("JWT secret", settings.jwt_secret.get_secret_value()),
        ("anon key", settings.local_key("anon")),
        ("service_role key", settings.service_key),
    ]
    width = max(len(label) for label, _ in rows)
    return [
        "Started ConnectGain local development setup.",
        "",
        *(f"{label:>{width}}: {value}" for label, value in rows),
        "",
    ]


def cmd_dev(args: argparse.Namespace, settings: Settings) -> None:
    if settings.mode != "local":
        # It prints its keys and secret: those of the local stack only.
        raise ClusterError("`connectgain dev` is local only; unset CONNECTGAIN_MODE")
    cluster = local_cluster(settings)
    if settings.database_url != cluster.url():
        # Serving one database after migrating another would be silently wrong.
        raise ClusterError(
            f"SUPABASE_DB_URL ({settings.database_url}) is not the local database"
            f" ({cluster.url()}).\nUnset it for `connectgain dev`; CONNECTGAIN_DB_PORT moves both."
        )
    if args.port:
        settings = settings.on_ports(api_port=args.port)
    _say(*cluster.start())
    _run_migrate(settings, cluster.url(), seed=True)
    _serve(args, settings, banner=dev_banner(settings))


def cmd_user(args: argparse.Namespace, settings: Settings) -> None:
    from shared.tooling.users import create_local_user

    created = asyncio.run(
        create_local_user(settings, email=args.email, org_name=args.org, role=args.role)
    )
    print(json.dumps(created))


def cmd_schedule(args: argparse.Namespace, settings: Settings) -> None:
    url = args.functions_url or settings.public_base_url
    if "127.0.0.1" in url or "localhost" in url:
        print(
            f"warning: the functions' URL is {url}; a hosted database cannot reach it"
            " (set CONNECTGAIN_PUBLIC_BASE_URL or --functions-url)",
            file=sys.stderr,
        )
    secrets = None if args.no_secrets else Secrets(url, settings.service_key)
    sql = schedule_sql(secrets=secrets)
    if args.action == "sql":
        sys.stdout.write(sql)
        return
    if not args.db_url:
        raise ScheduleError("schedule install needs --db-url (the hosted project's database)")
    for name, cron in asyncio.run(install_schedule(args.db_url, sql)):
        _say(f"scheduled {name}: {cron}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="connectgain", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    db = sub.add_parser("db", help="the embedded PostgreSQL")
    db.add_argument(
        "action", choices=["start", "stop", "status", "reset", "url", "psql", "migrate"]
    )
    db.add_argument("--db-url", help="migrate this database instead of the local one")
    db.set_defaults(handler=cmd_db)

    user = sub.add_parser("user", help="local users (never on a hosted project)")
    user.add_argument("action", choices=["create"])
    user.add_argument("--email", required=True)
    user.add_argument("--org", help="organization to create, or to join if it exists")
    user.add_argument("--role", choices=["agent", "manager", "admin", "owner"])
    user.set_defaults(handler=cmd_user)

    # serve: as deployed; dev: the same, logging every request (bench/README.md).
    for name, handler in (("serve", cmd_serve), ("dev", cmd_dev)):
        p = sub.add_parser(name, help=f"{name} the functions on one port")
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, default=None)
        p.add_argument(
            "--no-schedule", action="store_true", help="do not run the scheduled functions"
        )
        # One process by default: on 2 cores shared with PostgreSQL a second one cost
        # CPU per message and gained nothing; more where the database runs elsewhere.
        p.add_argument("--workers", type=int, default=1, help="server processes (default 1)")
        p.add_argument(
            "--access-log",
            action=argparse.BooleanOptionalAction,
            default=name == "dev",
            help="log every request",
        )
        p.add_argument(
            "--function",
            metavar="SLUG",
            help="serve this function (and health) alone, or 'all' (CONNECTGAIN_FUNCTION)",
        )
        p.set_defaults(handler=handler)

    schedule = sub.add_parser(
        "schedule", help="the scheduled functions on a hosted project (pg_cron + pg_net)"
    )
    schedule.add_argument("action", choices=["sql", "install"])
    schedule.add_argument("--db-url", help="install into this database")
    schedule.add_argument(
        "--functions-url", help="where the functions are served (CONNECTGAIN_PUBLIC_BASE_URL)"
    )
    schedule.add_argument(
        "--no-secrets", action="store_true", help="leave the Vault secrets as they are"
    )
    schedule.set_defaults(handler=cmd_schedule)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace, Settings], None] = args.handler
    try:
        settings = get_settings()
    except ValidationError as exc:
        print(f"error: configuration: {exc}", file=sys.stderr)
        return 1
    try:
        handler(args, settings)
    except (ClusterError, MigrationError, ScheduleError, ServeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"error: cannot reach the database: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
