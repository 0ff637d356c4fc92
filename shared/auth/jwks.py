"""The public keys Supabase Auth signs access tokens with (its JWKS), cached for the
request path.

Supabase publishes them at `<SUPABASE_URL>/auth/v1/.well-known/jwks.json`. A token
names its key by `kid`. The set is kept for `jwks_ttl_seconds`. A kid we don't
know triggers a refresh, so a key Supabase rotates to is accepted. Refreshes are
at least `jwks_min_refresh_seconds` apart, so made-up kids can't make us hammer
the endpoint. When the endpoint fails, the keys we already have keep working.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from jwt.exceptions import InvalidKeyError

from shared.errors import AppError, ServiceUnavailable, Unauthorized, UpstreamError

log = logging.getLogger("connectgain.auth")

# A public JWK's fields; anything else (a private part published by mistake) is dropped.
_PUBLIC_FIELDS = frozenset({"kty", "crv", "x", "y", "n", "e"})


@dataclass(frozen=True)
class SigningKey:
    kid: str
    # Pinned by the key's type: a token must name this algorithm to be checked with it.
    algorithm: str
    key: Any  # cryptography's public key object


def _signing_key(jwk: object) -> SigningKey | None:
    """A JWK we can verify with (EC P-256 → ES256, RSA → RS256); None for any other."""
    if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str) or not jwk["kid"]:
        return None
    kty = jwk.get("kty")
    loader: Callable[[dict[str, Any]], Any]
    if kty == "EC" and jwk.get("crv") == "P-256":
        algorithm, loader = "ES256", ECAlgorithm.from_jwk
    elif kty == "RSA":
        algorithm, loader = "RS256", RSAAlgorithm.from_jwk
    else:  # symmetric ("oct") keys are never published; other curves are not Supabase's
        return None
    if jwk.get("alg", algorithm) != algorithm or jwk.get("use", "sig") != "sig":
        return None
    try:
        key = loader({k: v for k, v in jwk.items() if k in _PUBLIC_FIELDS})
    except (InvalidKeyError, ValueError, TypeError, KeyError):
        return None
    return SigningKey(kid=jwk["kid"], algorithm=algorithm, key=key)


def parse_jwks(document: object) -> dict[str, SigningKey]:
    """kid → key of a JWKS document; keys we cannot use are skipped."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JSON Web Key Set")
    keys = (_signing_key(jwk) for jwk in document["keys"])
    return {key.kid: key for key in keys if key is not None}


class JwksCache:
    """One project's signing keys, shared by every request of a Runtime."""

    def __init__(
        self,
        *,
        url: str,
        http: httpx.AsyncClient,
        ttl_seconds: float,
        min_refresh_seconds: float,
        timeout_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url, self.http, self.clock = url, http, clock
        self.ttl, self.min_refresh, self.timeout = ttl_seconds, min_refresh_seconds, timeout_seconds
        self._keys: dict[str, SigningKey] = {}
        self._fetched_at: float | None = None  # the last successful fetch
        self._attempted_at: float | None = None  # the last fetch, whatever came of it
        self._failure: AppError | None = None  # why the last fetch failed, if it did
        self._lock = asyncio.Lock()  # one fetch at a time; the others wait for its keys

    async def key(self, kid: str) -> SigningKey:
        if (key := self._fresh_key(kid)) is not None:
            return key
        async with self._lock:
            if (key := self._fresh_key(kid)) is not None:
                return key
            if self._attempted_at is None or self.clock() - self._attempted_at >= self.min_refresh:
                await self._refresh()
            if (key := self._keys.get(kid)) is not None:
                return key  # fresh, or kept while the endpoint fails
            if self._failure is not None:
                failure = self._failure
                raise type(failure)(failure.message, code=failure.code)
            raise Unauthorized(
                "The access token is signed with a key Supabase Auth does not publish",
                code="unknown_kid",
            )

    def _fresh_key(self, kid: str) -> SigningKey | None:
        if self._fetched_at is None or self.clock() - self._fetched_at >= self.ttl:
            return None
        return self._keys.get(kid)

    async def _refresh(self) -> None:
        self._attempted_at = self.clock()
        try:
            keys = await self._fetch()
        except AppError as failure:
            log.warning("JWKS fetch from %s failed: %s", self.url, failure.message)
            self._failure = failure
            return
        self._keys, self._fetched_at, self._failure = keys, self.clock(), None

    async def _fetch(self) -> dict[str, SigningKey]:
        try:
            response = await self.http.get(
                self.url, timeout=self.timeout, headers={"Accept": "application/json"}
            )
        except httpx.TimeoutException as exc:
            raise ServiceUnavailable(
                "Supabase Auth's signing keys did not arrive in time", code="jwks_unavailable"
            ) from exc
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(
                "Supabase Auth's signing keys could not be fetched", code="jwks_unavailable"
            ) from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise ServiceUnavailable(
                f"Supabase Auth's signing keys: HTTP {response.status_code}",
                code="jwks_unavailable",
            )
        try:
            if response.status_code != 200:
                raise ValueError(f"HTTP {response.status_code}")
            return parse_jwks(response.json())
        except ValueError as exc:
            raise UpstreamError(
                f"Supabase Auth's signing keys are unreadable: {exc}", code="jwks_invalid"
            ) from exc
