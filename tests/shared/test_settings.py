from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from shared.settings import LOCAL_JWT_SECRET, Settings


def test_local_mode_has_working_defaults():
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.jwt_secret is not None
    assert settings.jwt_secret.get_secret_value() == LOCAL_JWT_SECRET
    assert settings.database_url.endswith(":54322/postgres")
    assert settings.jwks_endpoint == "http://127.0.0.1:54321/auth/v1/.well-known/jwks.json"


def test_the_local_jwt_secret_is_refused_outside_local_mode():
    with pytest.raises(ValidationError, match="local default"):
        Settings(
            mode="production",
            jwt_secret=SecretStr(LOCAL_JWT_SECRET),
            service_role_key=SecretStr("k"),
            _env_file=None,  # type: ignore[call-arg]
        )


def test_production_may_leave_the_legacy_jwt_secret_unset():
    """A project on signing keys verifies by JWKS only: HS256 tokens are refused then."""
    settings = Settings(
        mode="production",
        supabase_url="https://abc.supabase.co",
        service_role_key=SecretStr("k"),
        cors_origins=["https://app.example.com"],
        _env_file=None,  # type: ignore[call-arg]
    )
    assert settings.jwt_secret is None
    assert settings.jwks_endpoint == "https://abc.supabase.co/auth/v1/.well-known/jwks.json"


def test_production_needs_a_service_key():
    with pytest.raises(ValidationError, match="SERVICE_ROLE_KEY"):
        Settings(mode="production", jwt_secret=SecretStr("s" * 40), _env_file=None)  # type: ignore[call-arg]


def test_supabase_environment_names_are_read(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SUPABASE_JWT_SECRET", "p" * 40)
    monkeypatch.setenv("SUPABASE_DB_URL", "postgresql://u:p@db.example:6543/postgres")
    monkeypatch.setenv("SUPABASE_JWKS_URL", "https://keys.example/jwks.json")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.jwt_secret is not None
    assert settings.jwt_secret.get_secret_value() == "p" * 40
    assert settings.jwks_endpoint == "https://keys.example/jwks.json"
    # the transaction pooler cannot keep prepared statements
    assert settings.statement_cache_size == 0


def test_a_direct_connection_keeps_the_statement_cache():
    settings = Settings(database_url="postgresql://u:p@db.example:5432/postgres", _env_file=None)  # type: ignore[call-arg]
    assert settings.statement_cache_size > 0


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("DB_URL", "URL", "PUBLIC_BASE_URL", "DB_PORT", "API_PORT"):
        monkeypatch.delenv(f"CONNECTGAIN_{name}", raising=False)
        monkeypatch.delenv(f"SUPABASE_{name}", raising=False)
    return monkeypatch


def test_one_port_setting_moves_every_local_url(clean_env: pytest.MonkeyPatch):
    clean_env.setenv("CONNECTGAIN_DB_PORT", "55432")
    clean_env.setenv("CONNECTGAIN_API_PORT", "55431")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.database_url == "postgresql://postgres:postgres@127.0.0.1:55432/postgres"
    assert settings.supabase_url == "http://127.0.0.1:55431"
    assert settings.public_base_url == "http://127.0.0.1:55431"
    assert settings.functions_url("health") == "http://127.0.0.1:55431/functions/v1/health"


def test_an_explicit_url_wins_over_the_port(clean_env: pytest.MonkeyPatch):
    clean_env.setenv("CONNECTGAIN_DB_PORT", "55432")
    clean_env.setenv("CONNECTGAIN_API_PORT", "55431")
    clean_env.setenv("SUPABASE_DB_URL", "postgresql://u:p@db.example:5432/postgres")
    clean_env.setenv("SUPABASE_URL", "https://abc.supabase.co")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.database_url == "postgresql://u:p@db.example:5432/postgres"
    assert settings.supabase_url == "https://abc.supabase.co"
    assert settings.public_base_url == "http://127.0.0.1:55431"


def test_moving_settings_to_other_ports_moves_only_what_follows_them(
    clean_env: pytest.MonkeyPatch,
):
    settings = Settings(supabase_url="https://abc.supabase.co", _env_file=None)  # type: ignore[call-arg]
    moved = settings.on_ports(api_port=6001, db_port=6002)
    assert (moved.api_port, moved.db_port) == (6001, 6002)
    assert moved.public_base_url == "http://127.0.0.1:6001"
    assert moved.database_url.endswith("@127.0.0.1:6002/postgres")
    assert moved.supabase_url == "https://abc.supabase.co"
    assert settings.database_url.endswith(":54322/postgres"), "the original is unchanged"
