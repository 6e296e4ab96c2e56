"""WebhooksService: parse the request, call service/webhooks.py, build the reply."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from notes.v1 import webhooks_pb2 as pb
from notes.v1 import webhooks_pb2_grpc as pb_grpc

from ..domain.errors import ValidationFailed
from ..domain.paging import PageTokens
from ..service import webhooks
from ..store.webhooks import DELIVERED, FAILED, PENDING, DeliveryRow, WebhookRow
from . import convert as c
from .interceptors import current

_STATES = {
    PENDING: pb.DELIVERY_STATE_PENDING,
    DELIVERED: pb.DELIVERY_STATE_DELIVERED,
    FAILED: pb.DELIVERY_STATE_FAILED,
}


def webhook_out(w: WebhookRow) -> pb.Webhook:
    return pb.Webhook(
        id=w.id,
        url=w.url,
        event_types=list(w.event_types),
        enabled=w.enabled,
        disabled_reason=w.disabled_reason,
        organization=w.org,
        create_time=c.time_out(w.create_time),
        update_time=c.time_out(w.update_time),
    )


def delivery_out(d: DeliveryRow) -> pb.WebhookDelivery:
    return pb.WebhookDelivery(
        event_id=d.event_id,
        event_type=d.event_type,
        state=_STATES[d.state],
        attempt_count=d.attempts,
        last_status_code=d.last_status,
        last_error=d.last_error,
        next_attempt_time=c.time_out(d.next_attempt_time) if d.state == PENDING else None,
        last_attempt_time=c.time_out(d.last_attempt_time),
        create_time=c.time_out(d.create_time),
    )


@contextlib.contextmanager
def _webhook_at() -> Iterator[None]:
    """Field violations named by their path in the request: the webhook's fields sit under
    `webhook` (AIP-193)."""
    try:
        yield
    except ValidationFailed as e:
        raise ValidationFailed(
            [
                (f"webhook.{f}" if f.split("[")[0] in webhooks.UPDATABLE else f, d)
                for f, d in e.violations
            ]
        ) from None


def _mask(w: pb.Webhook, paths: list[str]) -> tuple[str, ...]:
    """AIP-134: an empty mask means the fields that are set; "*" means all of them."""
    if paths == ["*"]:
        return webhooks.UPDATABLE
    if paths:
        return tuple(paths)
    present = {f.name for f, _ in w.ListFields()}
    return tuple(name for name in webhooks.UPDATABLE if name in present)


class WebhooksServicer(pb_grpc.WebhooksServiceServicer):
    def __init__(self, tokens: PageTokens) -> None:
        self._tokens = tokens

    def CreateWebhook(self, request, context) -> pb.CreateWebhookResponse:
        w = request.webhook
        with _webhook_at():
            out, secret, replayed = webhooks.create_webhook(
                current().principal, w.url, list(w.event_types), w.enabled, request.request_id
            )
        return pb.CreateWebhookResponse(
            webhook=webhook_out(out), secret=secret, idempotency_status=c.status_out(replayed)
        )

    def GetWebhook(self, request, context) -> pb.GetWebhookResponse:
        return pb.GetWebhookResponse(
            webhook=webhook_out(webhooks.get_webhook(current().principal, request.id))
        )

    def ListWebhooks(self, request, context) -> pb.ListWebhooksResponse:
        rows, token = webhooks.list_webhooks(
            current().principal, request.page_size, request.page_token, self._tokens
        )
        return pb.ListWebhooksResponse(
            webhooks=[webhook_out(w) for w in rows], next_page_token=token
        )

    def UpdateWebhook(self, request, context) -> pb.UpdateWebhookResponse:
        w = request.webhook
        with _webhook_at():
            out, replayed = webhooks.update_webhook(
                current().principal,
                w.id,
                w.url,
                list(w.event_types),
                w.enabled,
                _mask(w, list(request.update_mask.paths)),
                request.request_id,
            )
        return pb.UpdateWebhookResponse(
            webhook=webhook_out(out), idempotency_status=c.status_out(replayed)
        )

    def DeleteWebhook(self, request, context) -> pb.DeleteWebhookResponse:
        replayed = webhooks.delete_webhook(current().principal, request.id, request.request_id)
        return pb.DeleteWebhookResponse(idempotency_status=c.status_out(replayed))

    def ListWebhookDeliveries(self, request, context) -> pb.ListWebhookDeliveriesResponse:
        rows, token = webhooks.list_deliveries(
            current().principal, request.id, request.page_size, request.page_token, self._tokens
        )
        return pb.ListWebhookDeliveriesResponse(
            deliveries=[delivery_out(d) for d in rows], next_page_token=token
        )
