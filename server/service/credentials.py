"""Credentials: API keys (stored as hashes, and sealed for OAuth 1.0a), HS256 JWTs (ours and
Medusa's admin tokens), and WooCommerce's OAuth 1.0a signatures, turned into a Principal."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass
from urllib.parse import quote, unquote

import jwt
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from ..domain.errors import PermissionDenied, Unauthenticated
from ..domain.model import Author, AuthorType, Principal, Scope, Surface
from ..domain.validation import Violations, check_id
from ..store import keys, uow
from .clock import now_us

DEFAULT_ORG = "default"
CACHE_SECONDS = 5.0  # a revoked key stops working within this time on every replica
CACHE_MAX = 10_000
KNOWN_SCOPES = frozenset(s.value for s in Scope)

# A Medusa admin user (actor_type "user", no scopes claim) manages customer notes there.
MEDUSA_ADMIN_SCOPES = frozenset({Scope.NOTES_READ.value, Scope.NOTES_WRITE.value})

# WooCommerce's one-legged OAuth 1.0a (class-wc-rest-authentication.php), as the gateway
# forwards it: "WC-OAuth1 " + base64url(JSON {method, urls, params, ref}): the URLs the client
# may have signed, the query (and form) parameters as [name, value] pairs, and a reference of
# the HTTP request (its several calls to the service are one use of the nonce).
OAUTH_SCHEME = "wc-oauth1"
OAUTH_WINDOW_SECONDS = 15 * 60
OAUTH_PARAMS = (
    "oauth_consumer_key",
    "oauth_timestamp",
    "oauth_nonce",
    "oauth_signature",
    "oauth_signature_method",
)
OAUTH_METHODS = {"HMAC-SHA1": hashlib.sha1, "HMAC-SHA256": hashlib.sha256}


class SecretBox:
    """Seals API key secrets with the server's Fernet keys (AES-128-CBC + HMAC-SHA256):
    the first key seals, every key opens, so keys rotate without a flag day."""

    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ValueError("at least one Fernet key is needed")
        self._fernet = MultiFernet([Fernet(k.encode()) for k in keys])

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode()

    def open(self, sealed: str) -> str | None:
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except (InvalidToken, ValueError):
            return None

    def reseal(self, sealed: str) -> str:
        return self._fernet.rotate(sealed.encode()).decode()


def default_box() -> SecretBox:
    from ..config import Settings

    return SecretBox(Settings().resolved_secret_keys())


def _rfc3986(value: str) -> str:
    """wc_rest_urlencode_rfc3986: PHP's rawurlencode."""
    return quote(value, safe="~")


def oauth_base_string(method: str, url: str, params: dict[str, str]) -> str:
    """The string WooCommerce signs: METHOD&enc(url)&enc(k=v)%26... over the parameters sorted
    by name (strcmp) without oauth_signature; keys and values are encoded once, then each
    k=v pair again (join_with_equals_sign)."""
    pairs = sorted(
        ((k, v) for k, v in params.items() if k != "oauth_signature"), key=lambda p: p[0].encode()
    )
    joined = "%26".join(_rfc3986(f"{_rfc3986(k)}={_rfc3986(v)}") for k, v in pairs)
    return f"{method.upper()}&{_rfc3986(url)}&{joined}"


def oauth_signature(base_string: str, consumer_secret: str, algorithm: str) -> str:
    digest = hmac.new(
        (consumer_secret + "&").encode(), base_string.encode(), OAUTH_METHODS[algorithm]
    ).digest()
    return base64.b64encode(digest).decode()


def _oauth_failure(reason: str, message: str) -> Unauthenticated:
    return Unauthenticated(message, reason=reason)


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

    def __init__(
        self,
        jwt_secret: str,
        default_org: str = DEFAULT_ORG,
        box: SecretBox | None = None,
        clock=time.time,
    ) -> None:
        self._jwt_secret = jwt_secret
        self._default_org = default_org
        self._box = box
        self._clock = clock
        self._cache: dict[str, _CachedKey] = {}
        self._lock = threading.Lock()

    def authenticate(self, authorization: str | None, surface: Surface = Surface.GRPC) -> Principal:
        if not authorization:
            raise Unauthenticated("credentials are required", reason="CREDENTIALS_MISSING")
        scheme, _, value = authorization.strip().partition(" ")
        value = value.strip()
        scheme = scheme.lower()
        if scheme == "bearer" and value.count(".") == 2:
            return self._from_jwt(value, surface)
        if scheme == OAUTH_SCHEME and value:
            return self._from_oauth(value)
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
        with uow.reading():
            if by == "secret":
                row = keys.find_key(secret_hash=hash_secret(value))
            else:
                row = keys.find_key(key_id=value[:200])
        with self._lock:
            if len(self._cache) >= CACHE_MAX:
                self._cache.clear()
            self._cache[cache_key] = _CachedKey(row, now)
        return row

    def _from_key(self, row, secret: str) -> Principal:
        if row is None or not hmac.compare_digest(row.secret_hash, hash_secret(secret)):
            raise Unauthenticated("the API key is not valid", reason="API_KEY_INVALID")
        return self._principal(row)

    def _from_oauth(self, value: str) -> Principal:
        """WooCommerce's checks in its order: parameters, consumer key, signature method and
        signature, timestamp (15 minutes either way), then the nonce (once per key)."""
        try:
            data = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
            method, ref = str(data["method"]), str(data["ref"])
            urls = [str(u) for u in data["urls"]][:2]
            params = {str(k): str(v) for k, v in data["params"]}  # the last value wins, as PHP
        except (ValueError, KeyError, TypeError):
            raise Unauthenticated(
                "malformed OAuth credentials", reason="CREDENTIALS_MALFORMED"
            ) from None
        missing = [name for name in OAUTH_PARAMS if not params.get(name)]
        if missing:
            raise Unauthenticated(
                "missing OAuth parameters",
                reason="OAUTH_PARAMETER_MISSING",
                metadata={"params": ", ".join(missing)},
            )
        row = self._load("id", params["oauth_consumer_key"])
        if row is None:
            raise _oauth_failure("OAUTH_CONSUMER_KEY_INVALID", "the consumer key is not valid")
        algorithm = params["oauth_signature_method"]
        if algorithm not in OAUTH_METHODS:
            raise _oauth_failure("OAUTH_SIGNATURE_METHOD_INVALID", "unknown signature method")
        secret = self._box.open(row.secret_sealed) if self._box and row.secret_sealed else None
        provided = unquote(params["oauth_signature"].replace(" ", "+"))
        # None: a key made before sealing, or sealed with a key no longer configured.
        expected = [
            oauth_signature(oauth_base_string(method, url, params), secret, algorithm)
            for url in (urls if secret is not None else [])
        ]
        if not any(hmac.compare_digest(e.encode(), provided.encode()) for e in expected):
            raise _oauth_failure("OAUTH_SIGNATURE_INVALID", "the signature does not match")
        now = int(self._clock())
        try:
            timestamp = int(params["oauth_timestamp"])
        except ValueError:
            timestamp = 0
        if abs(timestamp - now) > OAUTH_WINDOW_SECONDS:
            raise _oauth_failure("OAUTH_TIMESTAMP_INVALID", "the timestamp is out of range")
        nonce = params["oauth_nonce"][:256]
        with uow.writing():
            fresh = keys.use_nonce(
                row.key_id, nonce, timestamp, ref[:64], now - OAUTH_WINDOW_SECONDS
            )
        if not fresh:
            raise _oauth_failure("OAUTH_NONCE_USED", "the nonce has already been used")
        return self._principal(row)

    def _principal(self, row) -> Principal:
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

    def _from_jwt(self, token: str, surface: Surface) -> Principal:
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
        if "scopes" not in claims and _medusa_admin(claims):
            # Medusa's own admin token: customer notes are what a Medusa admin manages, so it
            # grants notes there and nothing anywhere else (gRPC keeps its scope rules).
            scopes = list(MEDUSA_ADMIN_SCOPES) if surface == Surface.CUSTOMER_NOTES else []
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


def _medusa_admin(claims: dict) -> bool:
    return claims.get("actor_type") == "user" and isinstance(claims.get("auth_identity_id"), str)


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
    box: SecretBox | None = None,
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
    with uow.writing():
        keys.insert_key(
            {
                "key_id": key_id,
                "secret_hash": hash_secret(secret),
                "secret_sealed": (box or default_box()).seal(secret),
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


def reseal_keys(box: SecretBox) -> dict[str, int]:
    """Seals every sealed secret (API keys' and webhooks') again with the first key, after a
    new key was put first. Secrets no configured key opens are left as they are and counted."""
    from ..store import webhooks

    with uow.reading():
        rows = [(r.key_id, r.secret_sealed, keys.set_key_sealed) for r in keys.list_all_keys()]
        rows += [(i, s, webhooks.set_sealed_secret) for i, s in webhooks.sealed_secrets()]
    done = unreadable = 0
    for owner, sealed, store in rows:
        if not sealed:
            continue
        try:
            resealed = box.reseal(sealed)
        except (InvalidToken, ValueError):
            unreadable += 1
            continue
        with uow.writing():
            store(owner, resealed)
        done += 1
    return {"resealed": done, "unreadable": unreadable}


def revoke_key(key_id: str) -> bool:
    with uow.writing():
        return keys.revoke_key(key_id, now_us())


def list_keys(org: str) -> list[dict[str, object]]:
    with uow.reading():
        rows = keys.list_keys(org)
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
