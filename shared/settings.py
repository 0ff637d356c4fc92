"""Environment configuration.

Every value has a safe local default so `connectgain dev` needs no setup. Names
follow Supabase where Supabase has one (SUPABASE_URL, SUPABASE_JWT_SECRET …);
our own take the CONNECTGAIN_ prefix. Outside local mode the local secrets are
refused, so a deployment cannot run with a key that is printed in this file.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

import jwt
from pydantic import AliasChoices, Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# The Supabase CLI's well-known local JWT secret; valid for local mode only.
LOCAL_JWT_SECRET = "super-secret-jwt-token-with-at-least-32-characters-long"
# Stand-ins for Stripe's keys in local mode (the tests' fake Stripe); refused elsewhere.
LOCAL_STRIPE_SECRET_KEY = "sk_test_connectgain_local"
LOCAL_STRIPE_WEBHOOK_SECRET = "whsec_connectgain_local"
LOCAL_DB_PORT = 54322
LOCAL_API_PORT = 54321
LOCAL_DB_USER = "postgres"
LOCAL_DB_PASSWORD = "postgres"
PROJECT_DIR = Path(__file__).resolve().parent.parent
# URLs that, left unset, follow the local ports (CONNECTGAIN_DB_PORT, CONNECTGAIN_API_PORT).
PORT_FOLLOWERS = ("database_url", "supabase_url", "public_base_url")


def local_database_url(port: int, database: str = "postgres") -> str:
    """The embedded database's URL (`connectgain db start`) on `port`."""
    return f"postgresql://{LOCAL_DB_USER}:{LOCAL_DB_PASSWORD}@127.0.0.1:{port}/{database}"


def local_api_url(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def _env(name: str) -> AliasChoices:
    return AliasChoices(f"CONNECTGAIN_{name}", f"SUPABASE_{name}")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CONNECTGAIN_", env_file=".env", extra="ignore", populate_by_name=True
    )

    mode: Literal["local", "production"] = "local"

    # Database
    # Unset, it is the embedded database's URL on db_port (see PORT_FOLLOWERS).
    database_url: str = Field(default="", validation_alias=_env("DB_URL"))
    db_pool_min: int = 1
    db_pool_max: int = 10
    # Supabase's transaction pooler (port 6543) cannot keep prepared statements
    # between transactions; "auto" recognises it by its port.
    db_pooler: Literal["auto", "session", "transaction"] = "auto"

    # Supabase project
    # Unset, the local server on api_port.
    supabase_url: str = Field(default="", validation_alias=_env("URL"))
    # The legacy JWT secret: HS256 tokens are accepted only when it is set (locally,
    # the Supabase CLI's). Projects on signing keys verify by JWKS and may leave it unset.
    jwt_secret: SecretStr | None = Field(default=None, validation_alias=_env("JWT_SECRET"))
    jwt_audience: str = "authenticated"
    jwt_issuer: str | None = None  # checked when set: Supabase's is <SUPABASE_URL>/auth/v1
    # Unset, <supabase_url>/auth/v1/.well-known/jwks.json (see jwks_endpoint).
    jwks_url: str = Field(default="", validation_alias=_env("JWKS_URL"))
    jwks_ttl_seconds: float = Field(default=600.0, ge=1.0)  # as Supabase's edge caches it
    # A token naming an unknown kid refreshes the keys, at most this often.
    jwks_min_refresh_seconds: float = Field(default=10.0, ge=0.0)
    jwks_timeout_seconds: float = Field(default=5.0, gt=0.0)  # it is on the request path
    service_role_key: SecretStr | None = Field(
        default=None, validation_alias=_env("SERVICE_ROLE_KEY")
    )

    # HTTP
    public_base_url: str = ""  # unset, the local server on api_port
    max_body_bytes: int = 1_048_576
    http_timeout_seconds: float = 10.0
    # Browser origins allowed to call the functions (CORS), comma-separated. Local
    # default: any. Production must name them: "*" (or unset) is refused there.
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ("*",)

    # Providers: each channel's API base is in its package's settings
    # (shared/channels/config.py).
    # Outbound calls: attempts per call, and the first backoff (doubles, or Retry-After)
    provider_attempts: int = 3
    provider_backoff_seconds: float = 0.5
    provider_max_wait_seconds: float = 30.0
    # How long an in-progress request holds its Idempotency-Key, and a send its message,
    # before a retry or the outbound-sweep job may finish what a killed server left.
    claim_seconds: float = Field(default=60.0, ge=5.0, le=3600.0)

    # The events worker (functions/events_worker.py): deliveries claimed per batch,
    # how long a claim holds them (longer than a webhook's whole attempt), and how
    # long one run keeps taking batches before it answers.
    events_batch_size: int = Field(default=200, ge=1, le=5000)
    events_lease_seconds: float = Field(default=60.0, ge=15.0, le=3600.0)
    events_run_seconds: float = Field(default=45.0, gt=0.0, le=300.0)
    # Outbound webhooks. Egress "public" delivers over https to public addresses
    # only; "local" also allows http and loopback (a receiver on this machine).
    # Unset: "local" in local mode, "public" otherwise; production refuses "local".
    webhook_egress: Literal["public", "local"] | None = None
    webhook_concurrency: int = Field(default=16, ge=1, le=256)
    webhook_connect_timeout_seconds: float = Field(default=3.0, gt=0.0, le=30.0)
    webhook_timeout_seconds: float = Field(default=10.0, gt=0.0, le=30.0)
    # An endpoint failing this long without a success is disabled.
    webhook_disable_after_hours: float = Field(default=120.0, gt=0.0)
    # After a rotation the previous secret still signs for this long.
    webhook_secret_overlap_hours: float = Field(default=24.0, ge=0.0, le=24 * 30)
    # events-retention: processed events (with their deliveries, webhook attempts and
    # automation runs) older than this are deleted; dead letters are kept until replayed
    # or this old. Deleted per batch, at most so many batches per run.
    events_retention_days: float = Field(default=30.0, ge=1.0, le=3650.0)
    dead_letter_retention_days: float = Field(default=90.0, ge=1.0, le=3650.0)
    events_retention_batch: int = Field(default=1000, ge=1, le=50000)
    events_retention_max_batches: int = Field(default=20, ge=1, le=10000)

    # Serving (`connectgain serve`, the image): one function's slug or "all", and
    # whether the local scheduler runs: "auto" runs it when serving all functions.
    function: str = "all"
    schedule: Literal["auto", "on", "off"] = "auto"

    # Local tooling
    project_dir: Path = PROJECT_DIR
    data_dir: Path = PROJECT_DIR / ".connectgain" / "db"
    db_port: int = LOCAL_DB_PORT
    api_port: int = LOCAL_API_PORT

    # Supabase Auth sends invitees to this page (the SPA) with ?invitation_token=…;
    # it must be allowed by the project's Auth redirect URLs (same host as site_url).
    invitation_redirect_url: str = "http://127.0.0.1:3000/accept-invitation"
    invitation_ttl_hours: int = Field(default=168, ge=1, le=24 * 90)
    # Supabase Auth sends one e-mail per address a minute; so do we, known or unknown.
    invitation_resend_seconds: int = Field(default=60, ge=0)

    # Billing (Stripe). Unset outside local mode, checkout, portal and the webhook
    # answer 503; the local stand-ins are refused there.
    stripe_secret_key: SecretStr | None = None
    stripe_webhook_secret: SecretStr | None = None
    stripe_api_base: str = "https://api.stripe.com"
    # How old a Stripe-Signature timestamp may be (Stripe's libraries default to 300 s).
    stripe_webhook_tolerance_seconds: int = Field(default=300, ge=1, le=3600)
    # past_due keeps the plan this long after the first failed payment, then free limits.
    billing_grace_days: float = Field(default=7.0, ge=0.0, le=60.0)
    # Where Checkout and the Customer Portal send the owner back (the SPA's billing page).
    billing_return_url: str = "http://127.0.0.1:3000/billing"

    _port_followers: frozenset[str] = PrivateAttr(default=frozenset())

    @field_validator("function", mode="before")
    @classmethod
    def _normalise_function(cls, value: object) -> object:
        return value.strip().lower() or "all" if isinstance(value, str) else value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(o.strip().rstrip("/") for o in value.split(",") if o.strip())
        return value

    @model_validator(mode="after")
    def _urls_follow_the_ports(self) -> Settings:
        unset = [name for name in PORT_FOLLOWERS if not getattr(self, name)]
        self._port_followers = frozenset(unset)
        self._apply_ports()
        return self

    def _apply_ports(self) -> None:
        if "database_url" in self._port_followers:
            self.database_url = local_database_url(self.db_port)
        if "supabase_url" in self._port_followers:
            self.supabase_url = local_api_url(self.api_port)
        if "public_base_url" in self._port_followers:
            self.public_base_url = local_api_url(self.api_port)

    def on_ports(self, *, db_port: int | None = None, api_port: int | None = None) -> Settings:
        """These settings on other local ports; the URLs that follow the ports move too."""
        update = {"db_port": db_port, "api_port": api_port}
        moved = self.model_copy(update={k: v for k, v in update.items() if v is not None})
        moved._apply_ports()
        return moved

    @model_validator(mode="after")
    def _refuse_local_secrets_outside_local(self) -> Settings:
        if self.mode == "local" and self.jwt_secret is None:
            self.jwt_secret = SecretStr(LOCAL_JWT_SECRET)
        if self.mode == "local":
            self.stripe_secret_key = self.stripe_secret_key or SecretStr(LOCAL_STRIPE_SECRET_KEY)
            self.stripe_webhook_secret = self.stripe_webhook_secret or SecretStr(
                LOCAL_STRIPE_WEBHOOK_SECRET
            )
        if self.mode != "local":
            for name, local in (
                ("stripe_secret_key", LOCAL_STRIPE_SECRET_KEY),
                ("stripe_webhook_secret", LOCAL_STRIPE_WEBHOOK_SECRET),
            ):
                secret = getattr(self, name)
                if secret is not None and secret.get_secret_value() == local:
                    raise ValueError(
                        f"CONNECTGAIN_{name.upper()} is the public local default;"
                        " set the Stripe account's"
                    )
            if (
                self.jwt_secret is not None
                and self.jwt_secret.get_secret_value() == LOCAL_JWT_SECRET
            ):
                raise ValueError(
                    "SUPABASE_JWT_SECRET is the public local default; set the project's secret"
                )
            if self.service_role_key is None:
                raise ValueError("SUPABASE_SERVICE_ROLE_KEY must be set outside local mode")
            if self.webhook_egress == "local":
                raise ValueError(
                    "CONNECTGAIN_WEBHOOK_EGRESS=local (http, loopback targets) is for local use"
                )
            if not self.cors_origins or "*" in self.cors_origins:
                raise ValueError(
                    "CONNECTGAIN_CORS_ORIGINS must name the browser origins outside local mode"
                    " (e.g. https://app.example.com); '*' is for local use"
                )
        return self

    @model_validator(mode="after")
    def _webhook_defaults(self) -> Settings:
        if self.webhook_egress is None:
            self.webhook_egress = "local" if self.mode == "local" else "public"
        if self.events_lease_seconds <= self.webhook_timeout_seconds:
            raise ValueError(
                "CONNECTGAIN_EVENTS_LEASE_SECONDS must exceed CONNECTGAIN_WEBHOOK_TIMEOUT_SECONDS"
            )
        return self

    @property
    def statement_cache_size(self) -> int:
        pooled = self.db_pooler == "transaction" or (
            self.db_pooler == "auto" and ":6543/" in self.database_url
        )
        return 0 if pooled else 100

    def local_key(self, role: Literal["anon", "service_role"]) -> str:
        """The local anon / service key: a long-lived JWT, as `supabase start` prints."""
        if self.jwt_secret is None:
            raise RuntimeError("The local keys need the local JWT secret")
        claims = {"iss": "supabase-demo", "role": role, "exp": 1983812996}
        return jwt.encode(claims, self.jwt_secret.get_secret_value(), algorithm="HS256")

    @property
    def service_key(self) -> str:
        if self.service_role_key is not None:
            return self.service_role_key.get_secret_value()
        return self.local_key("service_role")

    @property
    def jwks_endpoint(self) -> str:
        """Where Supabase Auth publishes its signing keys (its documented path)."""
        return self.jwks_url or f"{self.supabase_url.rstrip('/')}/auth/v1/.well-known/jwks.json"

    def functions_url(self, slug: str) -> str:
        return f"{self.public_base_url.rstrip('/')}/functions/v1/{slug}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
