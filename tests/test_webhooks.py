"""Webhooks: the API, Standard Webhooks deliveries to real HTTP receivers, retries, 410, the
customer-visible notification from the legacy surfaces, tenancy, the SSRF guard, the CLI."""

from __future__ import annotations

import base64
import json
import signal
import socket
import uuid

import grpc
import httpx
import pytest
from cryptography.fernet import Fernet
from notes.v1 import notes_pb2 as pb
from notes.v1 import notes_pb2_grpc as pb_grpc
from notes.v1 import webhooks_pb2 as wpb
from notes.v1 import webhooks_pb2_grpc as wpb_grpc

from server import delivery
from server.config import Settings
from server.domain import model as m
from server.service import credentials, sealing
from server.service.credentials import SecretBox
from server.store import db, uow
from server.store import webhooks as store

from .conftest import (
    JWT_SECRET,
    bad_fields,
    error_info,
    make_database,
    start_service,
    stop_service,
)
from .events_helpers import drain
from .gateway.conftest import admin_jwt, bearer
from .test_observability import scrape, value
from .webhook_receiver import Receiver

HOOK_SCOPES = ["notes:read", "notes:write", "webhooks:write"]


def stub(tenant) -> tuple[wpb_grpc.WebhooksServiceStub, tuple]:
    """The tenant's WebhooksService and credentials that grant webhooks:write."""
    secret = tenant.key(HOOK_SCOPES)
    return wpb_grpc.WebhooksServiceStub(tenant.channel), (("authorization", f"Bearer {secret}"),)


def create_hook(tenant, url: str, types=(), **kwargs) -> wpb.CreateWebhookResponse:
    hooks, auth = stub(tenant)
    return hooks.CreateWebhook(
        wpb.CreateWebhookRequest(
            webhook=wpb.Webhook(url=url, event_types=list(types), enabled=True), **kwargs
        ),
        metadata=auth,
    )


def attempts(service, webhook_id: str, predicate, timeout: float = 30.0) -> list[dict]:
    """The worker's attempts on webhook_id as it logs them, once predicate(attempts) holds."""

    def of(lines):
        out = []
        for line in lines:
            if '"webhook_attempt"' in line and webhook_id in line:
                out.append(json.loads(line))
        return out

    return of(service.wait_for_log(lambda lines: predicate(of(lines)), timeout))


def deliveries(tenant, webhook_id: str) -> list[wpb.WebhookDelivery]:
    hooks, auth = stub(tenant)
    req = wpb.ListWebhookDeliveriesRequest(id=webhook_id)
    return list(hooks.ListWebhookDeliveries(req, metadata=auth).deliveries)


def test_the_secret_is_shown_once_and_stored_sealed(service, tenant):
    created = create_hook(tenant, "https://hooks.example.com/notes", ["note.created"])
    assert created.secret.startswith("whsec_")
    assert len(base64.b64decode(created.secret.removeprefix("whsec_"))) == 32
    hook = created.webhook
    assert hook.id.startswith("wh_") and hook.enabled and hook.organization == tenant.org
    hooks, auth = stub(tenant)
    got = hooks.GetWebhook(wpb.GetWebhookRequest(id=hook.id), metadata=auth).webhook
    assert got == hook
    database = db.current().database
    with uow.reading():
        sql = f'SELECT "sealed_secret" FROM "webhooks" WHERE "id" = {database.param}'
        (stored,) = database.execute_sql(sql, (hook.id,)).fetchone()
    secret_b64 = created.secret.removeprefix("whsec_")
    assert secret_b64 not in stored and created.secret not in stored
    assert stored.startswith("gAAAAA")  # a Fernet token


def test_crud_paging_request_ids_and_scope(service, tenant, other_tenant):
    hooks, auth = stub(tenant)
    ids = [
        create_hook(tenant, f"https://hooks.example.com/{i}", request_id=f"wh-{i}").webhook.id
        for i in range(3)
    ]
    replay = create_hook(tenant, "https://hooks.example.com/0", request_id="wh-0")
    assert replay.webhook.id == ids[0]
    assert replay.idempotency_status == pb.IDEMPOTENCY_STATUS_REPLAYED

    seen, token = [], ""
    while True:
        page = hooks.ListWebhooks(
            wpb.ListWebhooksRequest(page_size=2, page_token=token), metadata=auth
        )
        seen += [w.id for w in page.webhooks]
        token = page.next_page_token
        if not token:
            break
    assert seen == ids

    updated = hooks.UpdateWebhook(
        wpb.UpdateWebhookRequest(
            webhook=wpb.Webhook(id=ids[1], enabled=False, event_types=["note.deleted"]),
            update_mask={"paths": ["enabled", "event_types"]},
        ),
        metadata=auth,
    ).webhook
    assert (updated.enabled, list(updated.event_types), updated.url) == (
        False,
        ["note.deleted"],
        "https://hooks.example.com/1",
    )
    with pytest.raises(grpc.RpcError) as bad:
        hooks.UpdateWebhook(
            wpb.UpdateWebhookRequest(
                webhook=wpb.Webhook(id=ids[1], event_types=["note.nope"]),
                update_mask={"paths": ["event_types"]},
            ),
            metadata=auth,
        )
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_fields(bad.value) == {"webhook.event_types[0]"}

    hooks.DeleteWebhook(wpb.DeleteWebhookRequest(id=ids[2]), metadata=auth)
    with pytest.raises(grpc.RpcError) as gone:
        hooks.GetWebhook(wpb.GetWebhookRequest(id=ids[2]), metadata=auth)
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND

    # Another organization's webhook does not exist for this one; no scope, no access.
    other_hooks, other_auth = stub(other_tenant)
    for call, req in [
        (other_hooks.GetWebhook, wpb.GetWebhookRequest(id=ids[0])),
        (other_hooks.DeleteWebhook, wpb.DeleteWebhookRequest(id=ids[0])),
        (other_hooks.ListWebhookDeliveries, wpb.ListWebhookDeliveriesRequest(id=ids[0])),
    ]:
        with pytest.raises(grpc.RpcError) as err:
            call(req, metadata=other_auth)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        assert error_info(err.value).reason == "WEBHOOK_NOT_FOUND"
    with pytest.raises(grpc.RpcError) as denied:
        hooks.ListWebhooks(wpb.ListWebhooksRequest(), metadata=tenant.auth)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_a_delivery_is_signed_and_verifies_with_standardwebhooks(service, tenant):
    with Receiver() as receiver:
        created = create_hook(tenant, receiver.url)
        note = tenant.create("signed").note
        (got,) = receiver.wait_count(1)
        payload = got.verified(created.secret)
        assert payload["type"] == "note.created"
        event = payload["data"]
        assert event["id"] == got.headers["webhook-id"] and event["id"].startswith("evt_")
        assert event["type"] == "note.created" and event["organization"] == tenant.org
        assert event["note"]["id"] == note.id and event["note"]["body"] == "signed"
        assert event["actor"]["id"] == tenant.actor_id and event["surface"] == "SURFACE_GRPC"
        assert payload["timestamp"].endswith("Z")
        assert got.headers["content-type"] == "application/json"
        assert got.headers["webhook-signature"].startswith("v1,")
        with pytest.raises(Exception, match="signature"):
            got.verified("whsec_" + base64.b64encode(b"x" * 32).decode())
        done = attempts(service, created.webhook.id, lambda a: len(a) == 1)
        assert done[0]["state"] == "delivered"
        (d,) = deliveries(tenant, created.webhook.id)
        assert (d.event_id, d.state, d.attempt_count, d.last_status_code) == (
            event["id"],
            wpb.DELIVERY_STATE_DELIVERED,
            1,
            200,
        )


def test_customer_visible_from_woocommerce_and_customer_notes(service, tenant):
    """What WooCommerce's customer_note promises (customers are notified) and customer notes'
    is_internal: false: a receiver subscribed to note.customer_visible gets exactly those."""
    consumer = (tenant.key_id, tenant.secret)  # WooCommerce consumer_key:consumer_secret
    with Receiver() as receiver, httpx.Client(base_url=service.http_base, timeout=10) as http:
        created = create_hook(tenant, receiver.url, ["note.customer_visible"])
        woo = http.post(
            "/wp-json/wc/v3/orders/723/notes",
            auth=consumer,
            json={"note": "Your parcel ships today", "customer_note": True},
        )
        assert woo.status_code == 201
        internal_woo = http.post(
            "/wp-json/wc/v3/orders/723/notes", auth=consumer, json={"note": "fraud check ok"}
        )
        assert internal_woo.status_code == 201
        admin = bearer(admin_jwt(tenant))
        visible = http.post(
            "/admin/customers/cus_1/notes",
            headers=admin,
            json={"body": "Thanks for your order", "is_internal": False},
        )
        internal = http.post(
            "/admin/customers/cus_1/notes",
            headers=admin,
            json={"body": "VIP, handle with care", "is_internal": True},
        )
        assert visible.status_code < 300 and internal.status_code < 300
        # A last customer-visible note: deliveries to one webhook go in event order, so
        # anything delivered for the internal notes would arrive before it.
        last = tenant.create("last", visibility=pb.VISIBILITY_CUSTOMER).note
        got = receiver.wait_for(lambda r: any(x.json["data"]["note"]["id"] == last.id for x in r))
        bodies = [(r.verified(created.secret)["type"], r.json["data"]["note"]["body"]) for r in got]
        assert bodies == [
            ("note.customer_visible", "Your parcel ships today"),
            ("note.customer_visible", "Thanks for your order"),
            ("note.customer_visible", "last"),
        ]
        assert got[0].json["data"]["surface"] == "SURFACE_WOOCOMMERCE"
        assert got[1].json["data"]["surface"] == "SURFACE_CUSTOMER_NOTES"


def test_500_twice_then_200_is_one_event_in_three_attempts(service, tenant):
    before = scrape(service.metrics_port)
    with Receiver(statuses=[500, 500]) as receiver:
        created = create_hook(tenant, receiver.url, ["note.created"])
        tenant.create("retried")
        got = receiver.wait_count(3)
        assert len({r.headers["webhook-id"] for r in got}) == 1
        for r in got:
            r.verified(created.secret)
        log = attempts(service, created.webhook.id, lambda a: len(a) == 3)
        assert [(a["attempt"], a["status"], a["state"]) for a in log] == [
            (1, 500, "pending"),
            (2, 500, "pending"),
            (3, 200, "delivered"),
        ]
        (d,) = deliveries(tenant, created.webhook.id)
        assert (d.state, d.attempt_count, d.last_status_code, d.last_error) == (
            wpb.DELIVERY_STATE_DELIVERED,
            3,
            200,
            "",
        )
        assert len(receiver.received) == 3
    # Attempts by result in /metrics (other tests' deliveries may add to them meanwhile).
    after = scrape(service.metrics_port)
    delta = {
        result: value(after, "notes_webhook_deliveries_total", result=result)
        - value(before, "notes_webhook_deliveries_total", result=result)
        for result in ("retrying", "delivered")
    }
    assert delta["retrying"] >= 2 and delta["delivered"] >= 1, delta
    assert any(name == "notes_webhook_deliveries_pending" for name, _ in after)


def test_after_the_last_attempt_a_delivery_is_failed_and_stays_listed(service, tenant):
    with Receiver(statuses=[503] * 10) as receiver:
        created = create_hook(tenant, receiver.url, ["note.created"])
        tenant.create("never")
        log = attempts(
            service, created.webhook.id, lambda a: any(x["state"] == "failed" for x in a)
        )
        assert len(log) == 4  # the first attempt and NOTES_WEBHOOK_RETRY_SECONDS' three
        (d,) = deliveries(tenant, created.webhook.id)
        assert (d.state, d.attempt_count, d.last_status_code, d.last_error) == (
            wpb.DELIVERY_STATE_FAILED,
            4,
            503,
            "HTTP 503",
        )
        assert not d.HasField("next_attempt_time")


def test_410_gone_disables_the_webhook(service, tenant):
    with Receiver(statuses=[410]) as receiver:
        created = create_hook(tenant, receiver.url, ["note.created"])
        tenant.create("gone")
        attempts(service, created.webhook.id, lambda a: len(a) == 1)
        hooks, auth = stub(tenant)
        hook = hooks.GetWebhook(wpb.GetWebhookRequest(id=created.webhook.id), metadata=auth)
        assert not hook.webhook.enabled and "410" in hook.webhook.disabled_reason
        (d,) = deliveries(tenant, created.webhook.id)
        assert (d.state, d.last_status_code) == (wpb.DELIVERY_STATE_FAILED, 410)
        # Disabled: later events make no deliveries.
        tenant.create("after")
        assert len(deliveries(tenant, created.webhook.id)) == 1


def test_two_organizations_never_see_each_others_deliveries(service, tenant, other_tenant):
    with Receiver() as mine, Receiver() as theirs:
        a = create_hook(tenant, mine.url)
        b = create_hook(other_tenant, theirs.url)
        note_a = tenant.create("a").note
        note_b = other_tenant.create("b").note
        got_a = mine.wait_count(1)
        got_b = theirs.wait_count(1)
        attempts(service, a.webhook.id, lambda x: len(x) == 1)
        attempts(service, b.webhook.id, lambda x: len(x) == 1)
        assert [r.verified(a.secret)["data"]["note"]["id"] for r in got_a] == [note_a.id]
        assert [r.verified(b.secret)["data"]["organization"] for r in got_b] == [other_tenant.org]
        assert [r.json["data"]["note"]["id"] for r in got_b] == [note_b.id]
        assert [d.event_id for d in deliveries(tenant, a.webhook.id)] == [
            got_a[0].headers["webhook-id"]
        ]


def test_the_cli_creates_lists_shows_deliveries_and_deletes(service, tenant):
    with Receiver() as receiver:
        out = service.cli(
            "webhooks", "create", "--org", tenant.org, "--url", receiver.url,
            "--events", "note.created,note.customer_visible",
        )  # fmt: skip
        created = json.loads(out.stdout)
        assert created["id"].startswith("wh_") and created["secret"].startswith("whsec_")
        listed = json.loads(service.cli("webhooks", "list", "--org", tenant.org).stdout)
        assert [w["id"] for w in listed] == [created["id"]]
        assert "secret" not in listed[0]
        tenant.create("via cli")
        (got,) = receiver.wait_count(1)
        assert got.verified(created["secret"])["type"] == "note.created"
        attempts(service, created["id"], lambda a: len(a) == 1)
        shown = json.loads(service.cli("webhooks", "deliveries", created["id"]).stdout)
        assert [(d["event_type"], d["state"], d["attempts"]) for d in shown] == [
            ("note.created", "delivered", 1)
        ]
        service.cli("webhooks", "delete", created["id"])
        assert json.loads(service.cli("webhooks", "list", "--org", tenant.org).stdout) == []
        refused = service.cli(
            "webhooks", "create", "--org", tenant.org, "--url", "ftp://x.example.com/",
            check=False,
        )  # fmt: skip
        assert refused.returncode == 2 and "url" in refused.stderr


@pytest.fixture(scope="module")
def guarded(service, tmp_path_factory):
    """The service as deployed: private addresses refused (NOTES_WEBHOOK_ALLOW_PRIVATE=0)."""
    svc = start_service(
        service.database_url,
        tmp_path_factory.mktemp("guarded"),
        "--no-http",
        env_extra={"NOTES_WEBHOOK_ALLOW_PRIVATE": "0", "NOTES_WEBHOOK_DELIVERY": "0"},
    )
    yield svc
    stop_service(svc)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hooks",
        "http://10.1.2.3/hooks",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:8080/hooks",
        "http://[::ffff:127.0.0.1]/hooks",
        "http://100.64.0.1/hooks",
        "http://0.0.0.0/hooks",
        "http://localhost:8080/hooks",
        "ftp://hooks.example.com/",
        "file:///etc/passwd",
    ],
)
def test_private_and_non_http_urls_are_refused_at_creation(guarded, tenant, url):
    with grpc.insecure_channel(guarded.grpc_target) as ch:
        hooks = wpb_grpc.WebhooksServiceStub(ch)
        auth = (("authorization", f"Bearer {tenant.key(HOOK_SCOPES)}"),)
        with pytest.raises(grpc.RpcError) as err:
            hooks.CreateWebhook(
                wpb.CreateWebhookRequest(webhook=wpb.Webhook(url=url, enabled=True)),
                metadata=auth,
            )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_fields(err.value) == {"webhook.url"}


def _claimed(url: str, secret: str) -> store.Claimed:
    """A delivery as the worker claims it, of a plain note.created event."""
    note = m.Note(
        subject=m.SubjectRef(m.SubjectType.CUSTOMER, "cus_1"),
        author=m.Author(m.AuthorType.USER, "user_1"),
        id="note_1",
        org="org_x",
    )
    payload = {
        "note": note.to_json(),
        "actor": {"type": "user", "id": "user_1", "display_name": ""},
        "surface": "grpc",
        "request_id": "",
        "api_key_id": "",
        "purpose": "",
    }
    return store.Claimed(
        seq=1,
        webhook_id="wh_1",
        event_id="evt_1",
        event_type="note.created",
        attempts=0,
        url=url,
        sealed_secret=sealing.seal(secret.encode()),
        lease_until=0,
        event=("evt_1", "org_x", "note.created", 1_700_000_000_000_000, json.dumps(payload)),
    )


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_delivery_connects_only_to_checked_addresses(monkeypatch, host):
    """At delivery the name is resolved and each address checked before connecting: a URL
    that passed at creation and now resolves to a private address reaches nothing."""
    box = SecretBox([Fernet.generate_key().decode()])
    monkeypatch.setattr(sealing, "_box", lambda: box)
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    with Receiver() as receiver:
        url = f"http://{host}:{receiver.port}/hooks"
        guarded_settings = Settings(webhook_allow_private=False, webhook_timeout_seconds=5)
        with delivery.client(guarded_settings) as http:
            refused = delivery.attempt(http, _claimed(url, secret), guarded_settings)
        assert refused.status == 0 and "not a public address (loopback)" in refused.error
        assert receiver.received == []
        open_settings = Settings(webhook_allow_private=True, webhook_timeout_seconds=5)
        with delivery.client(open_settings) as http:
            sent = delivery.attempt(http, _claimed(url, secret), open_settings)
        assert sent.delivered
        (got,) = receiver.received
        assert got.verified(secret)["data"]["note"]["id"] == "note_1"


@pytest.mark.slow
def test_sigkill_while_the_receiver_hangs_loses_no_delivery(service, tmp_path):
    """The service is killed while attempts hang on a receiver that never answers; after a
    restart, with the receiver up on the same port, every event is delivered."""
    url, drop = make_database(service.engine, tmp_path)
    env = {
        "NOTES_WEBHOOK_TIMEOUT_SECONDS": "1",
        "NOTES_WEBHOOK_RETRY_SECONDS": ",".join(["0.3"] * 60),
    }
    hanging = socket.socket()
    hanging.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    hanging.bind(("127.0.0.1", 0))
    hanging.listen(64)  # connections complete in the backlog; nothing ever answers
    port = hanging.getsockname()[1]
    org = "org_" + uuid.uuid4().hex[:10]
    token = credentials.mint_token(JWT_SECRET, org, "user_1", [*HOOK_SCOPES, "subjects:write"], 600)
    auth = (("authorization", f"Bearer {token}"),)
    victim = start_service(url, tmp_path, "--no-http", env_extra=env)
    revived = None
    try:
        with grpc.insecure_channel(victim.grpc_target) as ch:
            pb_grpc.SubjectsServiceStub(ch).UpsertSubject(
                pb.UpsertSubjectRequest(
                    subject=pb.Subject(type=pb.SUBJECT_TYPE_CUSTOMER, id="cus_1")
                ),
                metadata=auth,
            )
            created = wpb_grpc.WebhooksServiceStub(ch).CreateWebhook(
                wpb.CreateWebhookRequest(
                    webhook=wpb.Webhook(
                        url=f"http://127.0.0.1:{port}/hooks",
                        event_types=["note.created"],
                        enabled=True,
                    )
                ),
                metadata=auth,
            )
            notes = pb_grpc.NotesServiceStub(ch)
            ids = set()
            for i in range(5):
                note = pb.Note(
                    subject=pb.SubjectRef(type=pb.SUBJECT_TYPE_CUSTOMER, id="cus_1"),
                    body=f"crash {i}",
                )
                ids.add(notes.CreateNote(pb.CreateNoteRequest(note=note), metadata=auth).note.id)
        attempts(victim, created.webhook.id, lambda a: len(a) >= 2)  # timed out, in flight
        victim.process.send_signal(signal.SIGKILL)
        victim.process.wait()
        hanging.close()
        with Receiver(port=port) as receiver:
            revived = start_service(url, tmp_path, "--no-http", env_extra=env)

            def every_note(got) -> bool:
                return ids <= {r.json["data"]["note"]["id"] for r in got}

            got = receiver.wait_for(every_note, timeout=60)
            by_note: dict[str, set[str]] = {}
            for r in got:
                payload = r.verified(created.secret)
                by_note.setdefault(payload["data"]["note"]["id"], set()).add(
                    r.headers["webhook-id"]
                )
            assert set(by_note) == ids
            assert all(len(event_ids) == 1 for event_ids in by_note.values())
    finally:
        hanging.close()
        for svc in (victim, revived):
            if svc is not None:
                stop_service(svc)
        drop()


def test_an_erasure_reaches_the_feed_and_webhooks_as_note_erased_without_content(service, tenant):
    """Erasing a customer: the feed keeps no event of the erased notes but one note.erased
    each, with the id and subject and nothing of the text; a webhook subscribed to
    note.erased receives it (signed like any other event)."""
    note = tenant.create("secret words of the customer").note
    with Receiver() as receiver:
        created = create_hook(tenant, receiver.url, ["note.erased"])
        tenant.subjects.EraseSubject(
            pb.EraseSubjectRequest(type=pb.SUBJECT_TYPE_CUSTOMER, id="cus_1"),
            metadata=tenant.auth,
        )
        (got,) = receiver.wait_count(1)
        payload = got.verified(created.secret)
    events, _ = drain(tenant)
    assert [(e.type, e.note.id) for e in events] == [("note.erased", note.id)]
    (erased,) = events
    assert erased.note.subject.id == "cus_1" and erased.note.number == note.number
    assert not erased.note.body and "secret words" not in str(erased)
    assert payload["type"] == "note.erased"
    assert payload["data"]["id"] == erased.id and payload["data"]["note"]["id"] == note.id
    assert "secret words" not in json.dumps(payload)
