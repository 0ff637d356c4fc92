"""supabase/config.toml must stay a valid Supabase CLI config that agrees with our ports."""

from __future__ import annotations

import tomllib
from typing import Any

from shared.settings import PROJECT_DIR, Settings

# Top-level sections the Supabase CLI knows; an unknown one makes `supabase start` fail.
CLI_SECTIONS = {
    "project_id",
    "api",
    "db",
    "realtime",
    "studio",
    "inbucket",
    "storage",
    "auth",
    "edge_runtime",
    "analytics",
    "functions",
    "experimental",
    "remotes",
}


def load() -> dict[str, Any]:
    return tomllib.loads((PROJECT_DIR / "supabase" / "config.toml").read_text())


def test_config_is_a_supabase_cli_config_for_this_project():
    config = load()
    assert set(config) <= CLI_SECTIONS
    assert config["project_id"] == "connectgain"
    assert config["realtime"]["enabled"] is True
    assert config["auth"]["enabled"] is True
    assert "public" in config["api"]["schemas"]
    assert config["db"]["major_version"] >= 15


def test_config_ports_are_the_ones_connectgain_uses():
    config = load()
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert config["api"]["port"] == settings.api_port == 54321
    assert config["db"]["port"] == settings.db_port == 54322
    assert [p.removeprefix("./") for p in config["db"]["seed"]["sql_paths"]] == ["seed.sql"]
