"""Webhooks: an organization's HTTP endpoints that receive its events (Standard Webhooks).

Every rule of a webhook lives here: its URL (http(s), a public address unless
NOTES_WEBHOOK_ALLOW_PRIVATE=1), its event types, its secret (whsec_ + base64 of 32 random
bytes, returned once and stored sealed, server/service/sealing.py). The fan-out of an event to
the webhooks subscribed to it runs in the event's own transaction (fan_out, called by
service/events.record); the delivery worker is server/delivery.py.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import ipaddress
import secrets
import threading
from urllib.parse import urlsplit

import ulid

from ..config import Settings
from ..domain import validation
from ..domain.errors import NotFound, PermissionDenied
from ..domain.model import Principal, Scope
from ..domain.paging import PageTokens
from ..store import uow
from ..store import webhooks as store
from ..store.webhooks import DeliveryRow, WebhookRow
from . import addresses, events, requests, sealing
from .clock import now_us

URL_MAX = 2048
SECRET_BYTES = 32
SECRET_PREFIX = "whsec_"
UPDATABLE = ("url", "event_types", "enabled")


class WebhookNotFound(NotFound):
    reason = "WEBHOOK_NOT_FOUND"


@functools.cache
def _allow_private() -> bool:
    return Settings().webhook_allow_private


def _require(p: Principal) -> None:
    if not p.grants(Scope.WEBHOOKS_WRITE.value):
        raise PermissionDenied(
            f"the credential lacks the scope {Scope.WEBHOOKS_WRITE.value}",
            metadata={"requiredScope": Scope.WEBHOOKS_WRITE.value},
        )


def _not_found(webhook_id: str) -> WebhookNotFound:
    return WebhookNotFound(
        f"webhook {webhook_id!r} does not exist", metadata={"webhookId": webhook_id}
    )


# --- rules ---------------------------------------------------------------------------------


def check_url(v: validation.Violations, url: str) -> None:
    """http(s), a host, and (unless private addresses are allowed) only public addresses,
    judged after resolving the name: the delivery worker checks again at every attempt."""
    if not url:
        v.add("url", "is required")
        return
    if len(url) > URL_MAX or any(not ch.isprintable() or ch.isspace() for ch in url):
        v.add("url", f"must be at most {URL_MAX} printable characters without spaces")
        return
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        v.add("url", "is not a valid URL")
        return
    if parts.scheme not in ("http", "https") or not parts.hostname:
        v.add("url", "must be an http or https URL with a host")
        return
    if _allow_private():
        return
    host = parts.hostname
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        literal = False
    else:
        literal = True
    try:
        if literal:
            why = addresses.refusal(host)
            if why:
                raise addresses.AddressRefused(why)
        else:
            addresses.resolve(host, port or (443 if parts.scheme == "https" else 80))
    except addresses.AddressRefused as e:
        v.add("url", f"must reach a public address: {e}")


def check_event_types(v: validation.Violations, types: list[str]) -> None:
    for i, t in enumerate(types):
        if t not in events.TYPES:
            v.add(f"event_types[{i}]", f"must be one of {', '.join(events.TYPES)}")
    if len(set(types)) != len(types):
        v.add("event_types", "must not repeat a type")


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _as_json(w: WebhookRow) -> dict:
    return dataclasses.asdict(w)


def _from_json(d: dict) -> WebhookRow:
    return WebhookRow(**{**d, "event_types": tuple(d["event_types"])})


# --- use cases -----------------------------------------------------------------------------


def create_webhook(
    p: Principal, url: str, event_types: list[str], enabled: bool, request_id: str = ""
) -> tuple[WebhookRow, str, bool]:
    """(the webhook, its secret, replayed). The secret is only ever returned here; a replay
    returns it again, unsealed from the recorded response (which holds it sealed)."""
    _require(p)
    v = validation.Violations()
    check_url(v, url)
    check_event_types(v, event_types)
    validation.check_request_id(v, request_id)
    v.raise_if_any()

    def work() -> tuple[WebhookRow, str]:
        now = now_us()
        secret = new_secret()
        w = WebhookRow(
            seq=0,
            id="wh_" + str(ulid.ULID()),
            org=p.org,
            url=url,
            event_types=tuple(event_types),
            enabled=enabled,
            disabled_reason="",
            sealed_secret=sealing.seal(secret.encode()),
            create_time=now,
            update_time=now,
        )
        store.insert(w)
        return w, secret

    (w, secret), replayed = requests.once(
        p,
        "CreateWebhook",
        request_id,
        lambda: {"url": url, "event_types": event_types, "enabled": enabled},
        work,
        lambda out: {"webhook": _as_json(out[0])},
        lambda data: (
            (w := _from_json(data["webhook"])),
            sealing.unseal(w.sealed_secret).decode(),
        ),
    )
    return w, secret, replayed


def get_webhook(p: Principal, webhook_id: str) -> WebhookRow:
    _require(p)
    with uow.reading():
        found = store.get(p.org, webhook_id)
    if found is None:
        raise _not_found(webhook_id)
    return found


def _fingerprint(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def _page_size(size: int) -> int:
    v = validation.Violations()
    validation.check_page_size(v, size)
    v.raise_if_any()
    return validation.effective_page_size(size)


def list_webhooks(
    p: Principal, page_size: int, page_token: str, tokens: PageTokens
) -> tuple[list[WebhookRow], str]:
    _require(p)
    size = _page_size(page_size)
    fingerprint = _fingerprint("ListWebhooks", p.org)
    after = tokens.read(page_token, fingerprint) if page_token else 0
    with uow.reading():
        rows = store.page(p.org, after, size + 1)
    more = len(rows) > size
    rows = rows[:size]
    return rows, tokens.issue(fingerprint, rows[-1].seq) if more else ""


def update_webhook(
    p: Principal,
    webhook_id: str,
    url: str,
    event_types: list[str],
    enabled: bool,
    mask: tuple[str, ...],
    request_id: str = "",
) -> tuple[WebhookRow, bool]:
    _require(p)
    v = validation.Violations()
    for path in mask:
        if path not in UPDATABLE:
            v.add("update_mask", f"may only name {', '.join(UPDATABLE)}")
    if "url" in mask:
        check_url(v, url)
    if "event_types" in mask:
        check_event_types(v, event_types)
    validation.check_request_id(v, request_id)
    v.raise_if_any()

    def work() -> WebhookRow:
        found = store.get(p.org, webhook_id)
        if found is None:
            raise _not_found(webhook_id)
        changes: dict[str, object] = {"update_time": now_us()}
        if "url" in mask:
            changes["url"] = url
        if "event_types" in mask:
            changes["event_types"] = tuple(event_types)
        if "enabled" in mask:
            changes["enabled"] = enabled
            if enabled:
                changes["disabled_reason"] = ""
        updated = dataclasses.replace(found, **changes)
        store.update(updated)
        return updated

    return requests.once(
        p,
        "UpdateWebhook",
        request_id,
        lambda: {
            "id": webhook_id,
            "mask": sorted(mask),
            "url": url,
            "event_types": event_types,
            "enabled": enabled,
        },
        work,
        _as_json,
        _from_json,
    )


def delete_webhook(p: Principal, webhook_id: str, request_id: str = "") -> bool:
    """Deletes the webhook and its deliveries; returns whether this was a replay."""
    _require(p)
    v = validation.Violations()
    validation.check_request_id(v, request_id)
    v.raise_if_any()

    def work() -> bool:
        if not store.delete(p.org, webhook_id):
            raise _not_found(webhook_id)
        return True

    _, replayed = requests.once(
        p, "DeleteWebhook", request_id, lambda: {"id": webhook_id}, work, bool, bool
    )
    return replayed


def list_deliveries(
    p: Principal, webhook_id: str, page_size: int, page_token: str, tokens: PageTokens
) -> tuple[list[DeliveryRow], str]:
    _require(p)
    size = _page_size(page_size)
    fingerprint = _fingerprint("ListWebhookDeliveries", p.org, webhook_id)
    after = tokens.read(page_token, fingerprint) if page_token else 0
    with uow.reading():
        if store.get(p.org, webhook_id) is None:
            raise _not_found(webhook_id)
        rows = store.deliveries(p.org, webhook_id, after, size + 1)
    more = len(rows) > size
    rows = rows[:size]
    return rows, tokens.issue(fingerprint, rows[-1].seq) if more else ""


# --- fan-out -------------------------------------------------------------------------------

# Notified when this process made deliveries, so the worker starts on them at once instead
# of at its next poll. `signals` counts notifications, so none is missed between polls.
DUE = threading.Condition()
signals = 0


def fan_out(org: str, event_id: str, event_type: str, at: int) -> None:
    """Inside the event's transaction: a pending delivery per subscribed webhook."""
    global signals
    if store.fan_out(org, event_id, event_type, at) > 0:
        with DUE:
            signals += 1
            DUE.notify()
