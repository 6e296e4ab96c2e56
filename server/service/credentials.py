"""Credentials: API keys (stored as hashes) and HS256 JWTs, turned into a Principal."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass

import jwt

from ..domain.errors import PermissionDenied, Unauthenticated
from ..domain.model import Author, AuthorType, Principal, Scope
from ..domain.validation import Violations, check_id
from ..store import repository as repo
from .clock import now_us

DEFAULT_ORG = "default"
CACHE_SECONDS = 5.0  # a revoked key stops working within this time on every replica
CACHE_MAX = 10_000
KNOWN_SCOPES = frozenset(s.value for s in Scope)


def hash_secret(secret: str) -> str:
    # Secrets are 256-bit random strings, so a fast hash is enough: nothing to brute-force.
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class NewKey:
    key_id: str
    secret: str


@dataclass(frozen=True)
class _CachedKey:
    row: object  # ApiKeyRow, or None when no key has this secret
    loaded_at: float


class Authenticator:
    """Checks `authorization` values; caches key look-ups for a few seconds."""

    def __init__(self, jwt_secret: str, default_org: str = DEFAULT_ORG) -> None:
        self._jwt_secret = jwt_secret
        self._default_org = default_org
        self._cache: dict[str, _CachedKey] = {}
        self._lock = threading.Lock()

    def authenticate(self, authorization: str | None) -> Principal:
        if not authorization:
            raise Unauthenticated("credentials are required", reason="CREDENTIALS_MISSING")
        scheme, _, value = authorization.strip().partition(" ")
        value = value.strip()
        scheme = scheme.lower()
        if scheme == "bearer" and value.count(".") == 2:
            return self._from_jwt(value)
        if scheme == "bearer" and value:
            return self._from_key(self._load("secret", value), value)
        if scheme == "basic" and value:
            try:
                decoded = base64.b64decode(value, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                raise Unauthenticated(
                    "malformed Basic credentials", reason="CREDENTIALS_MALFORMED"
                ) from None
            key_id, _, secret = decoded.partition(":")
            if "\x00" in decoded:
                # No key has one, and PostgreSQL cannot even compare text holding it.
                raise Unauthenticated("the API key is not valid", reason="API_KEY_INVALID")
            if not secret:  # a secret key alone, as the user name with an empty password
                return self._from_key(self._load("secret", key_id), key_id)
            return self._from_key(self._load("id", key_id), secret)
        raise Unauthenticated("unsupported credentials", reason="CREDENTIALS_MALFORMED")

    def _load(self, by: str, value: str):
        cache_key = by + ":" + (hash_secret(value) if by == "secret" else value)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(cache_key)
        if hit is not None and now - hit.loaded_at < CACHE_SECONDS:
            return hit.row
        with repo.reading():
            if by == "secret":
                row = repo.find_key(secret_hash=hash_secret(value))
            else:
                row = repo.find_key(key_id=value[:200])
        with self._lock:
            if len(self._cache) >= CACHE_MAX:
                self._cache.clear()
            self._cache[cache_key] = _CachedKey(row, now)
        return row

    def _from_key(self, row, secret: str) -> Principal:
        if row is None or not hmac.compare_digest(row.secret_hash, hash_secret(secret)):
            raise Unauthenticated("the API key is not valid", reason="API_KEY_INVALID")
        now = now_us()
        if row.revoke_time is not None:
            raise Unauthenticated("the API key was revoked", reason="API_KEY_REVOKED")
        if row.expire_time is not None and row.expire_time <= now:
            raise Unauthenticated("the API key has expired", reason="API_KEY_EXPIRED")
        return Principal(
            org=row.org,
            author=Author(AuthorType.USER, row.actor_id, row.display_name),
            scopes=frozenset(row.scopes.split()),
            api_key_id=row.key_id,
            purpose=row.purpose,
        )

    def _from_jwt(self, token: str) -> Principal:
        try:
            claims = jwt.decode(
                token,
                self._jwt_secret,
                algorithms=["HS256"],  # pinned: no "none", no algorithm confusion
                options={"require": ["exp"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the token has expired", reason="TOKEN_EXPIRED") from None
        except jwt.InvalidTokenError:
            raise Unauthenticated("the token is not valid", reason="TOKEN_INVALID") from None
        actor = claims.get("actor_id")
        name = claims.get("name")
        org = claims.get("org") or self._default_org
        scopes = claims.get("scopes", [])
        if isinstance(scopes, str):
            scopes = scopes.replace(",", " ").split()
        if (
            not isinstance(actor, str)
            or not actor
            or not isinstance(org, str)
            or not _storable(actor + org + (name if isinstance(name, str) else ""))
            or not isinstance(scopes, list)
        ):
            raise Unauthenticated("the token lacks actor_id", reason="TOKEN_INVALID")
        kind = AuthorType.SYSTEM if claims.get("actor_type") == "system" else AuthorType.USER
        return Principal(
            org=org,
            author=Author(kind, actor, name if isinstance(name, str) else ""),
            scopes=frozenset(s for s in scopes if isinstance(s, str)),
        )


def sign_surface(key: bytes, surface: str, authorization: str) -> str:
    """What the gateway sends beside the surface it names, so that no other caller can name
    one: HMAC-SHA256 over the surface and the call's credential."""
    message = f"{surface}\n{authorization}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _storable(text: str) -> bool:
    """Without NUL or lone surrogates, which PostgreSQL cannot hold (nor SQLite keep whole)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def check_access(p: Principal, scopes: list[str]) -> Principal:
    """The caller, if its credential grants every scope asked for."""
    v = Violations()
    for i, scope in enumerate(scopes):
        if scope not in KNOWN_SCOPES:
            v.add(f"scopes[{i}]", f"must be one of {', '.join(sorted(KNOWN_SCOPES))}")
    v.raise_if_any()
    missing = [s for s in scopes if not p.grants(s)]
    if missing:
        raise PermissionDenied(
            f"the credential lacks the scope {missing[0]}", metadata={"requiredScope": missing[0]}
        )
    return p


def _check_scopes(v: Violations, scopes: list[str]) -> None:
    unknown = [s for s in scopes if s not in KNOWN_SCOPES]
    if unknown or not scopes:
        v.add("scopes", f"must be some of {', '.join(sorted(KNOWN_SCOPES))}")


def create_key(
    org: str,
    actor_id: str,
    display_name: str,
    scopes: list[str],
    purpose: str,
    expires_in: int | None = None,
) -> NewKey:
    v = Violations()
    check_id(v, "org", org)
    check_id(v, "actor_id", actor_id)
    _check_scopes(v, scopes)
    if expires_in is not None and expires_in <= 0:
        v.add("expires_in", "must be positive")
    v.raise_if_any()
    key_id = "key_" + secrets.token_hex(8)
    secret = "sk_" + secrets.token_urlsafe(32)
    now = now_us()
    with repo.writing():
        repo.insert_key(
            {
                "key_id": key_id,
                "secret_hash": hash_secret(secret),
                "org": org,
                "actor_id": actor_id,
                "display_name": display_name,
                "purpose": purpose,
                "scopes": " ".join(scopes),
                "create_time": now,
                "expire_time": now + expires_in * 1_000_000 if expires_in else None,
            }
        )
    return NewKey(key_id, secret)


def revoke_key(key_id: str) -> bool:
    with repo.writing():
        return repo.revoke_key(key_id, now_us())


def list_keys(org: str) -> list[dict[str, object]]:
    with repo.reading():
        rows = repo.list_keys(org)
    return [
        {
            "key_id": r.key_id,
            "org": r.org,
            "actor_id": r.actor_id,
            "display_name": r.display_name,
            "purpose": r.purpose,
            "scopes": r.scopes.split(),
            "create_time": r.create_time,
            "expire_time": r.expire_time,
            "revoke_time": r.revoke_time,
        }
        for r in rows
    ]


def mint_token(
    jwt_secret: str,
    org: str,
    actor_id: str,
    scopes: list[str],
    ttl: int = 3600,
    name: str = "",
) -> str:
    v = Violations()
    check_id(v, "org", org)
    check_id(v, "actor_id", actor_id)
    _check_scopes(v, scopes)
    if ttl <= 0:
        v.add("ttl", "must be positive")
    v.raise_if_any()
    now = int(time.time())
    claims: dict[str, object] = {
        "actor_id": actor_id,
        "actor_type": "user",
        "org": org,
        "scopes": scopes,
        "iat": now,
        "exp": now + ttl,
    }
    if name:
        claims["name"] = name
    return jwt.encode(claims, jwt_secret, algorithm="HS256")
