"""WooCommerce's official Python client over plain http: one-legged OAuth 1.0a, checked as
class-wc-rest-authentication.php does (signature, 15-minute timestamp, nonce once per key)."""

from __future__ import annotations

import time
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from woocommerce import API
from woocommerce.oauth import OAuth

from server.store import uow
from server.store.models import ApiKeyRow
from tests.conftest import Tenant

AUTH_ERROR = "woocommerce_rest_authentication_error"


def client(service, tenant: Tenant) -> API:
    return API(
        url=service.http_base,  # http://: the client signs with OAuth 1.0a
        consumer_key=tenant.key_id,
        consumer_secret=tenant.secret,
        version="wc/v3",
        timeout=10,
    )


def signed_url(service, tenant: Tenant, method: str, path: str, **kwargs) -> str:
    url = f"{service.http_base}/wp-json/wc/v3/{path}?"
    oauth = OAuth(url, tenant.key_id, tenant.secret, version="wc/v3", method=method, **kwargs)
    return oauth.get_oauth_url()


def with_param(url: str, name: str, value: str) -> str:
    parts = urlsplit(url)
    params = [(k, value if k == name else v) for k, v in parse_qsl(parts.query)]
    return urlunsplit(parts._replace(query=urlencode(params)))


def test_the_official_client_creates_retrieves_lists_and_deletes(service, tenant):
    wcapi = client(service, tenant)
    created = wcapi.post("orders/723/notes", {"note": "Order ok!!!"})
    assert created.status_code == 201, created.text
    note = created.json()
    assert note["note"] == "Order ok!!!" and note["author"] == "system"
    number = note["id"]

    got = wcapi.get(f"orders/723/notes/{number}")
    assert got.status_code == 200, got.text
    assert got.json()["id"] == number

    listed = wcapi.get("orders/723/notes", params={"type": "internal"})
    assert listed.status_code == 200, listed.text
    assert number in [n["id"] for n in listed.json()]

    deleted = wcapi.delete(f"orders/723/notes/{number}", params={"force": True})
    assert deleted.status_code == 200, deleted.text
    assert wcapi.get(f"orders/723/notes/{number}").status_code == 404


def test_a_tampered_signature_is_refused(service, tenant):
    url = signed_url(service, tenant, "GET", "orders/723/notes")
    query = dict(parse_qsl(urlsplit(url).query))
    tampered = query["oauth_signature"][:-2] + (
        "AA" if query["oauth_signature"][-2:] != "AA" else "BB"
    )
    response = httpx.get(with_param(url, "oauth_signature", tampered))
    assert response.status_code == 401
    assert response.json() == {
        "code": AUTH_ERROR,
        "message": "Invalid signature - provided signature does not match.",
        "data": {"status": 401},
    }
    # A parameter changed after signing breaks the signature too.
    response = httpx.get(url + "&type=customer")
    assert response.json()["message"] == "Invalid signature - provided signature does not match."


def test_an_old_timestamp_is_refused(service, tenant):
    url = signed_url(
        service, tenant, "GET", "orders/723/notes", oauth_timestamp=int(time.time()) - 16 * 60
    )
    response = httpx.get(url)
    assert response.status_code == 401
    assert response.json()["code"] == AUTH_ERROR
    assert response.json()["message"] == "Invalid timestamp."


def test_a_replayed_nonce_is_refused(service, tenant):
    url = signed_url(service, tenant, "GET", "orders/723/notes")
    first = httpx.get(url)
    assert first.status_code == 200, first.text
    again = httpx.get(url)
    assert again.status_code == 401
    assert again.json()["message"] == "Invalid nonce - nonce has already been used."


def test_hmac_sha1_and_form_bodies_are_signed_as_woocommerce_signs_them(service, tenant):
    """HMAC-SHA1, and a form body's parameters joining the query's in the base string."""
    import base64
    import hashlib
    import hmac
    import secrets
    from urllib.parse import quote

    url = f"{service.http_base}/wp-json/wc/v3/orders/723/notes"
    params = {
        "oauth_consumer_key": tenant.key_id,
        "oauth_timestamp": str(int(time.time())),
        "oauth_nonce": secrets.token_hex(16),
        "oauth_signature_method": "HMAC-SHA1",
    }
    form = {"note": "Signed form ~ 100% [ok]"}

    def enc(s: str) -> str:
        return quote(s, safe="~")

    pairs = sorted({**params, **form}.items())
    base = "POST&" + enc(url) + "&" + "%26".join(enc(f"{enc(k)}={enc(v)}") for k, v in pairs)
    digest = hmac.new((tenant.secret + "&").encode(), base.encode(), hashlib.sha1).digest()
    params["oauth_signature"] = base64.b64encode(digest).decode()
    response = httpx.post(url, params=params, data=form)
    assert response.status_code == 201, response.text
    assert response.json()["note"] == form["note"]
    # The same signature over another body does not pass.
    params["oauth_nonce"] = secrets.token_hex(16)
    response = httpx.post(url, params=params, data={"note": "Something else"})
    assert response.json()["message"] == "Invalid signature - provided signature does not match."


def test_missing_oauth_parameters_and_unknown_keys(service, tenant):
    url = signed_url(service, tenant, "GET", "orders/723/notes")
    parts = urlsplit(url)
    partial = [(k, v) for k, v in parse_qsl(parts.query) if k != "oauth_nonce"]
    response = httpx.get(urlunsplit(parts._replace(query=urlencode(partial))))
    assert response.status_code == 401
    assert response.json()["code"] == "woocommerce_rest_authentication_missing_parameter"
    assert response.json()["message"] == "Missing OAuth parameter oauth_nonce"
    response = httpx.get(with_param(url, "oauth_consumer_key", "key_unknown"))
    assert response.status_code == 401
    assert response.json()["message"] == "Consumer key is invalid."


@pytest.mark.parametrize("sealed", [None, "not-a-fernet-token"])
def test_keys_without_a_sealed_secret_keep_basic_but_cannot_sign(service, tenant, sealed):
    """A key made before secrets were sealed: Basic and query-string auth as before; OAuth is
    WooCommerce's invalid signature."""
    with uow.writing():
        ApiKeyRow.update(secret_sealed=sealed).where(ApiKeyRow.key_id == tenant.key_id).execute()
    base = f"{service.http_base}/wp-json/wc/v3/orders/723/notes"
    assert httpx.get(base, auth=(tenant.key_id, tenant.secret)).status_code == 200
    query = {"consumer_key": tenant.key_id, "consumer_secret": tenant.secret}
    assert httpx.get(base, params=query).status_code == 200
    response = client(service, tenant).get("orders/723/notes")
    assert response.status_code == 401
    assert response.json()["message"] == "Invalid signature - provided signature does not match."


def test_secrets_are_stored_sealed_never_in_plain_text(service, tenant):
    with uow.reading():
        row = ApiKeyRow.get(ApiKeyRow.key_id == tenant.key_id)
    assert row.secret_sealed and tenant.secret not in row.secret_sealed
    assert tenant.secret not in row.secret_hash
