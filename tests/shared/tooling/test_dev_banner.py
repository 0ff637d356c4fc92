"""`connectgain dev` prints its URLs and keys in one block, as `supabase start` does."""

from __future__ import annotations

import re

import jwt
import pytest

from shared.settings import LOCAL_JWT_SECRET, Settings
from shared.tooling import cli
from shared.tooling.cluster import ClusterError

LINE = re.compile(r"^ *(?P<label>[A-Za-z_ ]+): (?P<value>\S+)$")


def banner_values(lines: list[str]) -> dict[str, str]:
    values = {}
    for line in lines:
        match = LINE.match(line)
        if match:
            values[match["label"].strip()] = match["value"]
    return values


def local(**update: object) -> Settings:
    return Settings(_env_file=None).model_copy(update=update)  # type: ignore[call-arg]


def test_the_block_names_every_url_and_key_like_supabase_start():
    lines = cli.dev_banner(local())
    values = banner_values(lines)
    assert list(values) == [
        "API URL",
        "Functions URL",
        "Realtime URL",
        "DB URL",
        "JWKS URL",
        "JWT secret",
        "anon key",
        "service_role key",
    ]
    assert values["API URL"] == "http://127.0.0.1:54321"
    assert values["Functions URL"] == "http://127.0.0.1:54321/functions/v1"
    assert values["Realtime URL"] == "ws://127.0.0.1:54321/realtime/v1"
    assert values["DB URL"] == "postgresql://postgres:postgres@127.0.0.1:54322/postgres"
    assert values["JWKS URL"] == "http://127.0.0.1:54321/auth/v1/.well-known/jwks.json"
    assert values["JWT secret"] == LOCAL_JWT_SECRET
    for label, role in (("anon key", "anon"), ("service_role key", "service_role")):
        claims = jwt.decode(values[label], LOCAL_JWT_SECRET, algorithms=["HS256"])
        assert claims["role"] == role

    # Right-aligned on the colon, as `supabase start` prints them, in one block.
    block = [line for line in lines if LINE.match(line)]
    assert len({line.index(": ") for line in block}) == 1
    start = lines.index(block[0])
    assert lines[start : start + len(block)] == block


def test_the_block_follows_the_ports():
    values = banner_values(cli.dev_banner(local().on_ports(db_port=6000, api_port=6001)))
    assert values["API URL"] == "http://127.0.0.1:6001"
    assert values["Functions URL"] == "http://127.0.0.1:6001/functions/v1"
    assert values["Realtime URL"] == "ws://127.0.0.1:6001/realtime/v1"
    assert values["JWKS URL"] == "http://127.0.0.1:6001/auth/v1/.well-known/jwks.json"
    assert values["DB URL"].endswith("@127.0.0.1:6000/postgres")


def test_dev_is_local_only_and_never_prints_a_project_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    production = Settings(  # type: ignore[call-arg]
        _env_file=None,
        mode="production",
        jwt_secret="a-project-secret-of-at-least-32-characters",
        service_role_key="a-project-service-key",
        cors_origins="https://app.example.com",
    )
    monkeypatch.setattr(cli, "get_settings", lambda: production)
    assert cli.main(["dev"]) == 1
    captured = capsys.readouterr()
    assert "local only" in captured.err
    assert "a-project" not in captured.out + captured.err
    with pytest.raises(ClusterError):
        cli.cmd_dev(cli.build_parser().parse_args(["dev"]), production)
