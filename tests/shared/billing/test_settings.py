"""Stripe's keys are settings: stand-ins locally, refused in production."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from shared.billing import stripe_api
from shared.errors import ServiceUnavailable
from shared.settings import LOCAL_STRIPE_SECRET_KEY, LOCAL_STRIPE_WEBHOOK_SECRET, Settings

PRODUCTION = {
    "mode": "production",
    "service_role_key": SecretStr("k"),
    "cors_origins": ["https://app.example.com"],
    "_env_file": None,
}


@pytest.mark.parametrize(
    ("name", "local"),
    [
        ("stripe_secret_key", LOCAL_STRIPE_SECRET_KEY),
        ("stripe_webhook_secret", LOCAL_STRIPE_WEBHOOK_SECRET),
    ],
)
def test_production_refuses_the_local_stripe_keys(name: str, local: str):
    with pytest.raises(ValidationError, match=f"CONNECTGAIN_{name.upper()}"):
        Settings(**PRODUCTION, **{name: SecretStr(local)})  # type: ignore[arg-type]
    real = Settings(**PRODUCTION, **{name: SecretStr(f"{local}_real")})  # type: ignore[arg-type]
    assert getattr(real, name).get_secret_value() == f"{local}_real"


def test_without_keys_billing_is_unconfigured_and_the_stand_in_never_reaches_stripe():
    unset = Settings(**PRODUCTION)  # type: ignore[arg-type]
    assert unset.stripe_secret_key is None and unset.stripe_webhook_secret is None
    local = Settings(_env_file=None)  # type: ignore[call-arg]
    assert local.stripe_secret_key is not None
    assert local.stripe_secret_key.get_secret_value() == LOCAL_STRIPE_SECRET_KEY
    for settings in (unset, local):  # local: the real API base, a key it would refuse
        with pytest.raises(ServiceUnavailable) as refused:
            stripe_api.client(settings)
        assert refused.value.code == "billing_not_configured"
