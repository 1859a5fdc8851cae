"""Who is calling, and what they may do: bearer JWTs from the OIDC issuer, verified with
joserfc against the issuer's published keys, or in dev mode a local all-scopes identity.

Keys come from the discovery document's `jwks_uri` (the document must name the configured
issuer), are cached, and are fetched again when a token names a key id the cache lacks (key
rotation). Fetches are at least `oidc_jwks_refetch_seconds` apart, so unauthenticated traffic
with made-up key ids cannot make us hammer the issuer, and while the issuer is unreachable the
cached keys go on serving. Only asymmetric algorithms are accepted, so neither `alg: none` nor
an HMAC token keyed with the public key gets through.

The audience is read from `oidc_audience_claim` (`aud`; Cognito access tokens name their app
client in `client_id` instead), and with `oidc_scope_prefix` set only the scopes carrying
that prefix count, read without it (Cognito prefixes each scope with its resource server's
identifier): a scope another resource server of the same issuer grants never passes for ours.
"""

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Annotated, Any

import httpx
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from pydantic import BaseModel

from rag_core.settings import Settings
from rag_serving.ratelimit import RateLimiter

log = logging.getLogger(__name__)

QUERY, INGEST, GOVERNANCE, ADMIN = "rag:query", "rag:ingest", "rag:governance", "rag:admin"
ALL_SCOPES = frozenset({QUERY, INGEST, GOVERNANCE, ADMIN})
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"]


class Principal(BaseModel):
    subject: str
    scopes: frozenset[str]
    groups: frozenset[str] | None  # None: reads every document (the dev identity only)


DEV_PRINCIPAL = Principal(subject="dev", scopes=ALL_SCOPES, groups=None)


class Unauthenticated(Exception):
    """The token is missing or not acceptable; the message says why (never the token)."""


def _claim(claims: dict[str, Any], path: str) -> Any:
    value: Any = claims
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _unprefixed(scopes: set[str], prefix: str) -> set[str]:
    """The scopes carrying `prefix`, without it; all of them when there is no prefix."""
    if not prefix:
        return scopes
    return {scope.removeprefix(prefix) for scope in scopes if scope.startswith(prefix)}


def _strings(value: Any) -> set[str]:
    if isinstance(value, str):
        return set(value.split())
    if isinstance(value, list):
        return {item for item in value if isinstance(item, str)}
    return set()


class OIDCVerifier:
    def __init__(
        self,
        settings: Settings,
        client: httpx.Client | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.settings = settings
        self._client = client or httpx.Client(timeout=5.0)
        self._clock = clock
        self._keys: KeySet | None = None
        self._fetched_at = self._attempted_at = -math.inf
        self._lock = threading.Lock()
        required: dict[str, jwt.ClaimsOption] = {
            "iss": {"essential": True, "value": settings.oidc_issuer},
            settings.oidc_audience_claim: {"essential": True, "value": settings.oidc_audience},
            "exp": {"essential": True},
            "sub": {"essential": True},
        }
        # `now` named, so that no claim option can stand for it.
        self._claims = jwt.JWTClaimsRegistry(now=None, leeway=30, **required)

    def _get_json(self, url: str) -> Any:
        response = self._client.get(url)
        response.raise_for_status()
        return response.json()

    def _fetch_keys(self) -> KeySet:
        issuer = self.settings.oidc_issuer
        discovery = self._get_json(f"{issuer.rstrip('/')}/.well-known/openid-configuration")
        named = discovery.get("issuer") if isinstance(discovery, dict) else None
        if named != issuer:
            raise ValueError(f"the discovery document names issuer {named!r}, not {issuer!r}")
        return KeySet.import_key_set(self._get_json(discovery["jwks_uri"]))

    def _refresh(self) -> None:
        """Fetch the keys; on failure keep the cached ones, if any."""
        try:
            self._keys = self._fetch_keys()
            self._fetched_at = self._clock()
        except (httpx.HTTPError, JoseError, ValueError, KeyError, TypeError) as exc:
            log.warning("could not fetch the OIDC issuer's keys: %s", exc)

    def _key_set(self, unknown_kid: bool = False) -> KeySet:
        with self._lock:  # one caller fetches; the others go on with the cached keys
            now = self._clock()
            stale = now - self._fetched_at > self.settings.oidc_jwks_cache_seconds
            due = now - self._attempted_at >= self.settings.oidc_jwks_refetch_seconds
            fetch = (stale or unknown_kid) and due
            if fetch:
                self._attempted_at = now
        if fetch:
            self._refresh()
        if self._keys is None:
            raise Unauthenticated("the issuer's keys could not be fetched")
        return self._keys

    def _decode(self, token: str) -> jwt.Token:
        try:
            return jwt.decode(token, self._key_set(), algorithms=ALGORITHMS)
        except InvalidKeyIdError:  # perhaps the issuer rotated its keys since we fetched them
            try:
                return jwt.decode(token, self._key_set(unknown_kid=True), algorithms=ALGORITHMS)
            except InvalidKeyIdError as exc:
                raise Unauthenticated("no key of the issuer has the token's key id") from exc

    def verify(self, token: str) -> Principal:
        try:
            decoded = self._decode(token)
            self._claims.validate(decoded.claims)
        except JoseError as exc:
            raise Unauthenticated(exc.description or exc.error) from exc
        except ValueError as exc:
            raise Unauthenticated("malformed token") from exc
        claims = decoded.claims
        scopes: set[str] = set()
        for path in self.settings.oidc_scope_claims:
            scopes |= _strings(_claim(claims, path))
        scopes = _unprefixed(scopes, self.settings.oidc_scope_prefix)
        groups = _strings(_claim(claims, self.settings.oidc_groups_claim))
        return Principal(subject=claims["sub"], scopes=frozenset(scopes), groups=frozenset(groups))


def build_authenticator(settings: Settings) -> OIDCVerifier | None:
    """The verifier, or None in dev mode (after a loud warning)."""
    if settings.auth_mode == "dev":
        log.warning(
            "RAG_AUTH_MODE=dev: every caller is the development identity with all scopes "
            "and access to every document. Never expose this API beyond your machine."
        )
        return None
    return OIDCVerifier(settings)


bearer = HTTPBearer(auto_error=False, description="An access token from the OIDC issuer.")


def get_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    authenticator: OIDCVerifier | None = request.app.state.authenticator
    if authenticator is None:
        return DEV_PRINCIPAL
    if credentials is None:
        # RFC 6750 3.1: a request without credentials gets the challenge, no error code.
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "a bearer token is required",
            headers={"WWW-Authenticate": "Bearer"},
        )
    try:
        return authenticator.verify(credentials.credentials)
    except Unauthenticated as exc:
        raise _invalid_token(str(exc)) from exc


def _invalid_token(reason: str) -> HTTPException:
    # Reasons can quote the token's header (its `alg`): keep the header value well-formed.
    quoted = "".join(c for c in reason if c.isascii() and c.isprintable() and c not in '"\\')
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        reason,
        headers={"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{quoted}"'},
    )


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require_scope(scope: str) -> Callable[[Request, Principal], Principal]:
    """A dependency admitting callers whose token grants `scope` (403 names it otherwise),
    within their rate limit for the route (429 with Retry-After otherwise)."""

    def check(request: Request, principal: PrincipalDep) -> Principal:
        if scope not in principal.scopes:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"missing scope {scope}")
        limiter: RateLimiter = request.app.state.rate_limiter
        # The route's template, not the path: varying an id in the path is the same route.
        route = request.scope["route"].path
        wait = limiter.acquire(f"{principal.subject}:{request.method}:{route}")
        if wait > 0:
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                "rate limit exceeded",
                headers={"Retry-After": str(math.ceil(wait))},
            )
        return principal

    return check
