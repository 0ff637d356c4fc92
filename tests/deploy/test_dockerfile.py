"""The image, checked without a Docker engine: the Dockerfile's stages, base, user,
port, health check and command, and what the build context lets in."""

from __future__ import annotations

import re
import subprocess

import pytest

from shared.settings import PROJECT_DIR, Settings
from shared.tooling import cli, entry
from tests.deploy.dockerfile import Stage, ignored, stages

DOCKERFILE = PROJECT_DIR / "Dockerfile"
PINNED_SLIM_311 = re.compile(r"^python:3\.11\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?$")


@pytest.fixture(scope="module")
def built() -> list[Stage]:
    return stages(DOCKERFILE)


@pytest.fixture(scope="module")
def final(built: list[Stage]) -> Stage:
    return built[-1]


def test_multi_stage_on_one_pinned_slim_python_311(built: list[Stage], final: Stage):
    assert len(built) >= 2
    assert {stage.image for stage in built} == {built[0].image}, "build and run on one base"
    assert PINNED_SLIM_311.match(built[0].image), built[0].image
    build = built[0]
    assert any(args.startswith(f"--from={build.name} ") for args in final.all("COPY"))
    assert not any("pip install" in args for args in final.all("RUN")), "built, not rebuilt"


def test_the_project_is_installed_from_pyproject_without_dev_extras(built: list[Stage]):
    installs = [a for a in built[0].all("RUN") if "pip install" in a]
    assert any(re.search(r"pip install (--no-deps )?\.(\s|$)", a) for a in installs), installs
    for args in installs:
        assert "[dev]" not in args and "-e " not in args and "requirements" not in args


def test_it_runs_as_a_user_that_is_not_root(final: Stage):
    user = final.all("USER")[-1].split(":")[0]
    assert user not in ("root", "0", "")
    creates = " ".join(final.all("RUN"))
    assert f"--uid {user}" in creates or f"useradd --system {user}" in creates


def test_it_exposes_the_port_it_serves_on_and_checks_its_health(final: Stage):
    env = final.env()
    assert final.all("EXPOSE") == [env["CONNECTGAIN_API_PORT"]]
    check = final.exec_form("HEALTHCHECK")
    assert check == ["python", "-m", "shared.tooling.probe"], "tested in test_container.py"
    assert "--interval=" in final.all("HEALTHCHECK")[-1]


def test_the_command_is_connectgain_serve_for_the_configured_function(final: Stage):
    command = final.exec_form("CMD")
    assert command[0] == "connectgain"
    args = cli.build_parser().parse_args(command[1:])
    assert args.handler is cli.cmd_serve
    assert args.host == "0.0.0.0"  # noqa: S104  (reachable from outside the container)
    assert args.function is None, "the function comes from CONNECTGAIN_FUNCTION"

    env = final.env()
    assert env["CONNECTGAIN_FUNCTION"] == "all"
    assert env["CONNECTGAIN_MODE"] == "production"
    assert env["CONNECTGAIN_SCHEDULE"] == "off", "hosted projects run the schedule in pg_cron"
    assert env["CONNECTGAIN_PROJECT_DIR"] == "/app"
    assert any(args.split() == ["supabase", "./supabase"] for args in final.all("COPY"))
    assert final.all("WORKDIR")[-1] == "/app", "the migrations are at $PROJECT_DIR/supabase"

    # What these settings serve: every function, without the local scheduler.
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        mode=env["CONNECTGAIN_MODE"],
        function=env["CONNECTGAIN_FUNCTION"],
        schedule=env["CONNECTGAIN_SCHEDULE"],
        service_role_key="a-project-service-key",
        cors_origins="https://app.example.com",
    )
    assert entry.plan(settings) == entry.Plan(slugs=None, schedule=())


def test_the_build_context_holds_the_project_and_nothing_else():
    ignore = ignored(PROJECT_DIR / ".dockerignore")
    for path in (
        ".venv/bin/python",
        ".connectgain/db/PG_VERSION",
        ".connectgain/supabase-cli/node_modules/supabase/package.json",
        "tests/conftest.py",
        "tests/deploy/test_dockerfile.py",
        "bench/ingest.py",
        ".env",
        "shared/.env",
        ".git/HEAD",
        "shared/__pycache__/web.cpython-311.pyc",
        "Dockerfile",
    ):
        assert ignore.excludes(path), path
    for path in ("pyproject.toml", "README.md", "shared/web.py", "functions/health.py"):
        assert not ignore.excludes(path), path

    tracked = subprocess.run(
        ["git", "ls-files"], cwd=PROJECT_DIR, capture_output=True, text=True, check=True
    ).stdout.split()
    sent = {path for path in tracked if not ignore.excludes(path)}
    assert {p for p in tracked if p.startswith(("shared/", "functions/"))} <= sent
    assert any(p.startswith("supabase/migrations/") for p in sent)
    assert {p.split("/")[0] for p in sent} == {
        "pyproject.toml",
        "README.md",
        "functions",
        "shared",
        "supabase",
    }
