from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from shared.settings import LOCAL_JWT_SECRET, Settings


def test_local_mode_has_working_defaults():
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.jwt_secret.get_secret_value() == LOCAL_JWT_SECRET
    assert settings.database_url.endswith(":54322/postgres")


def test_the_local_jwt_secret_is_refused_outside_local_mode():
    with pytest.raises(ValidationError, match="local default"):
        Settings(mode="production", service_role_key=SecretStr("k"), _env_file=None)  # type: ignore[call-arg]


def test_production_needs_a_service_key():
    with pytest.raises(ValidationError, match="SERVICE_ROLE_KEY"):
        Settings(mode="production", jwt_secret=SecretStr("s" * 40), _env_file=None)  # type: ignore[call-arg]


def test_supabase_environment_names_are_read(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SUPABASE_JWT_SECRET", "p" * 40)
    monkeypatch.setenv("SUPABASE_DB_URL", "postgresql://u:p@db.example:6543/postgres")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.jwt_secret.get_secret_value() == "p" * 40
    # the transaction pooler cannot keep prepared statements
    assert settings.statement_cache_size == 0


def test_a_direct_connection_keeps_the_statement_cache():
    settings = Settings(database_url="postgresql://u:p@db.example:5432/postgres", _env_file=None)  # type: ignore[call-arg]
    assert settings.statement_cache_size > 0
