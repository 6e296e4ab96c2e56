"""The `notes` command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from .config import Settings
from .domain.errors import DomainError, ValidationFailed
from .domain.model import Author, AuthorType, Principal, Scope, Subject, SubjectType
from .store import db, migrations
from .telemetry import logs

log = logging.getLogger("notes")


def _settings(args: argparse.Namespace) -> Settings:
    s = Settings()
    for name in ("grpc_addr", "http_addr", "database_url", "tls_cert", "tls_key"):
        value = getattr(args, name, None)
        if value:
            setattr(s, name, value)
    return s


def _open(settings: Settings) -> db.Engine:
    engine = db.open_database(settings.database_url, pool_size=settings.threads + 4)
    migrations.migrate(engine)
    return engine


def _print(obj: object) -> None:
    print(json.dumps(obj, indent=2, ensure_ascii=False))


def cmd_serve(args: argparse.Namespace) -> int:
    from . import runtime

    settings = _settings(args)
    if args.metrics_addr is not None:
        settings.metrics_addr = args.metrics_addr
    settings.resolved_jwt_secret()  # made once, before any worker exists
    if args.no_http:
        settings.http_enabled = False
    if args.gateway_workers is not None:
        settings.gateway_workers = args.gateway_workers
    gateways = settings.gateway_processes(args.workers)
    if args.workers > 1 or gateways > 0:
        return runtime.serve_workers(settings, args.workers, gateways)
    return runtime.serve(settings)


def cmd_gateway(args: argparse.Namespace) -> int:
    from . import runtime
    from .gateway.app import create_app
    from .telemetry import tracing

    settings = runtime.fit_open_files(_settings(args))
    settings.metrics_addr = ""  # the gateway alone serves no /metrics (yet)
    tracing.configure(settings.traces_exporter)

    def started(port: int) -> None:
        log.info("serving", extra={"http_port": port, "target": args.target})

    runtime.run_http(create_app(args.target, settings), settings, lambda: None, started)
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    engine = db.open_database(_settings(args).database_url, pool_size=2)
    applied = migrations.migrate(engine)
    _print({"applied": applied, "version": migrations.current_version(engine)})
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from .service import credentials

    settings = _settings(args)
    _open(settings)
    box = credentials.SecretBox(settings.resolved_secret_keys())
    if args.keys_command == "create":
        key = credentials.create_key(
            args.org,
            args.actor_id,
            args.display_name,
            [s for s in args.scopes.split(",") if s],
            args.purpose,
            args.expires_in,
            box=box,
        )
        _print({"key_id": key.key_id, "secret": key.secret})
    elif args.keys_command == "reseal":
        _print(credentials.reseal_keys(box))
    elif args.keys_command == "revoke":
        if not credentials.revoke_key(args.key_id):
            print(f"no active key {args.key_id}", file=sys.stderr)
            return 1
        _print({"key_id": args.key_id, "revoked": True})
    else:
        _print(credentials.list_keys(args.org))
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from .service import credentials

    settings = _settings(args)
    token = credentials.mint_token(
        settings.resolved_jwt_secret(),
        args.org,
        args.actor_id,
        [s for s in args.scopes.split(",") if s],
        args.ttl,
        args.name or "",
    )
    print(token)
    return 0


def _registry_principal(org: str) -> Principal:
    return Principal(
        org=org,
        author=Author(AuthorType.SYSTEM, "cli"),
        scopes=frozenset({Scope.SUBJECTS_WRITE.value}),
    )


def _subject_type(value: str) -> SubjectType:
    try:
        return SubjectType(value.lower())
    except ValueError:
        raise ValidationFailed(
            [("type", f"must be one of {', '.join(t.value for t in SubjectType)}")]
        ) from None


def cmd_subjects(args: argparse.Namespace) -> int:
    from .service import subjects

    _open(_settings(args))
    principal = _registry_principal(args.org)
    if args.subjects_command == "list":
        return _list_subjects(args, principal)
    subject_type = _subject_type(args.type)
    if args.subjects_command == "erase":
        from .service import erasure

        erased, _ = erasure.erase_subject(principal, subject_type, args.id)
        _print(
            {
                "notes_erased": erased.notes_erased,
                "links_removed": erased.links_removed,
            }
        )
        return 0
    if args.subjects_command == "put":
        parent = args.parent_id or ""
        if args.parent_type and args.parent_type.lower() != "order":
            raise ValidationFailed([("parent_type", "must be order")])
        subject, created, _ = subjects.upsert_subject(
            principal, Subject(subject_type, args.id, parent, args.display_name or "")
        )
    else:
        subject, created = subjects.archive_subject(principal, subject_type, args.id)[0], False
    _print(
        {
            "org": args.org,
            "type": subject.type.value,
            "id": subject.id,
            "parent_id": subject.parent_id,
            "display_name": subject.display_name,
            "archived": subject.archive_time is not None,
            "created": created,
        }
    )
    return 0


def _list_subjects(args: argparse.Namespace, principal: Principal) -> int:
    from .domain.paging import PageTokens
    from .service import subjects

    tokens = PageTokens(_settings(args).resolved_jwt_secret().encode())
    subject_type = _subject_type(args.type) if args.type else None
    token, out = "", []
    while True:
        page, token = subjects.list_subjects(
            principal, subject_type, args.parent_id or "", args.show_archived, 1000, token, tokens
        )
        out.extend(
            {
                "type": s.type.value,
                "id": s.id,
                "parent_id": s.parent_id,
                "display_name": s.display_name,
                "archived": s.archive_time is not None,
            }
            for s in page
        )
        if not token:
            break
    _print(out)
    return 0


def cmd_purge_deleted(args: argparse.Namespace) -> int:
    from .service import erasure

    if args.older_than is None:
        args.older_than = _settings(args).deleted_retention_days * 24 * 3600
    if args.older_than < 0:
        raise ValidationFailed([("older_than", "must not be negative")])
    _open(_settings(args))
    _print({"erased": erasure.purge_deleted(args.older_than * 1_000_000)})
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from . import transfer

    _open(_settings(args))
    if args.out and args.out != "-":
        with open(args.out, "w", encoding="utf-8") as out:
            count = transfer.export(args.org, out)
    else:
        count = transfer.export(args.org, sys.stdout)
    print(json.dumps({"exported": count}), file=sys.stderr)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from . import transfer

    _open(_settings(args))
    progress = None if args.quiet else transfer.progress_line()
    if args.file == "-":
        done = transfer.import_lines(args.org, sys.stdin, args.format, progress=progress)
    else:
        with open(args.file, encoding="utf-8") as source:
            done = transfer.import_lines(args.org, source, args.format, progress=progress)
    _print(
        {
            "lines": done.lines,
            "created": done.created,
            "skipped": done.skipped,
            "renumbered": done.renumbered,
            "seconds": round(done.seconds, 2),
        }
    )
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from .store import audit, uow

    _open(_settings(args))
    with uow.reading():
        events = audit.list_events(args.org, args.note_id)
    _print(
        [
            {
                "action": e.action,
                "actor": {"type": e.actor.type.value, "id": e.actor.id},
                "surface": e.surface.value,
                "request_id": e.request_id,
                "old_version": e.old_version,
                "new_version": e.new_version,
                "event_time_us": e.event_time,
                "api_key_id": e.api_key_id,
            }
            for e in events
        ]
    )
    return 0 if events else 1


def cmd_purge_requests(args: argparse.Namespace) -> int:
    from .service.clock import now_us
    from .store import request_ids, uow

    if args.older_than < MIN_REQUEST_ID_RETENTION:
        raise ValidationFailed(
            [("older_than", f"must be at least {MIN_REQUEST_ID_RETENTION} seconds (24 hours)")]
        )
    _open(_settings(args))
    with uow.writing():
        purged = request_ids.purge_requests(now_us() - args.older_than * 1_000_000)
    _print({"purged": purged})
    return 0


MIN_REQUEST_ID_RETENTION = 24 * 3600


def cmd_purge_events(args: argparse.Namespace) -> int:
    from .service import events

    settings = _settings(args)
    _open(settings)
    _print({"purged": events.purge_expired(settings.event_retention_days)})
    return 0


def _webhook_json(w, secret: str = "") -> dict:
    out = {
        "id": w.id,
        "org": w.org,
        "url": w.url,
        "event_types": list(w.event_types),
        "enabled": w.enabled,
        "disabled_reason": w.disabled_reason,
        "create_time_us": w.create_time,
    }
    return {**out, "secret": secret} if secret else out


def cmd_webhooks(args: argparse.Namespace) -> int:
    from .domain.paging import PageTokens
    from .service import webhooks
    from .store import uow
    from .store import webhooks as store

    settings = _settings(args)
    _open(settings)
    tokens = PageTokens(settings.resolved_jwt_secret().encode())
    org = getattr(args, "org", None)
    if org is None:  # the operator names a webhook by id alone
        with uow.reading():
            org = store.org_of(args.id)
        if org is None:
            print(f"error: no webhook {args.id}", file=sys.stderr)
            return 1
    principal = Principal(
        org=org,
        author=Author(AuthorType.SYSTEM, "cli"),
        scopes=frozenset({Scope.WEBHOOKS_WRITE.value}),
    )
    command = args.webhooks_command
    if command == "create":
        types = [t for t in (args.events or "").split(",") if t]
        w, secret, _ = webhooks.create_webhook(principal, args.url, types, not args.disabled)
        _print(_webhook_json(w, secret))
    elif command == "list":
        out, token = [], ""
        while True:
            rows, token = webhooks.list_webhooks(principal, 1000, token, tokens)
            out.extend(_webhook_json(w) for w in rows)
            if not token:
                break
        _print(out)
    elif command == "delete":
        webhooks.delete_webhook(principal, args.id)
        _print({"id": args.id, "deleted": True})
    else:
        out, token = [], ""
        while True:
            rows, token = webhooks.list_deliveries(principal, args.id, 1000, token, tokens)
            out.extend(
                {
                    "event_id": d.event_id,
                    "event_type": d.event_type,
                    "state": d.state,
                    "attempts": d.attempts,
                    "last_status": d.last_status,
                    "last_error": d.last_error,
                    "next_attempt_time_us": d.next_attempt_time,
                    "last_attempt_time_us": d.last_attempt_time,
                }
                for d in rows
            )
            if not token:
                break
        _print(out)
    return 0


def cmd_deliver(args: argparse.Namespace) -> int:
    from .delivery import deliver_forever

    return deliver_forever(_settings(args))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="notes", description="The notes service.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--database-url", help="env NOTES_DATABASE_URL")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", parents=[common], help="run the gRPC service")
    serve.add_argument("--grpc-addr", help="env NOTES_GRPC_ADDR (127.0.0.1:50051)")
    serve.add_argument("--http-addr", help="env NOTES_HTTP_ADDR (127.0.0.1:8080)")
    serve.add_argument("--no-http", action="store_true", help="gRPC only, no gateway")
    serve.add_argument("--workers", type=int, default=1, help="processes sharing the ports")
    serve.add_argument(
        "--gateway-workers",
        type=int,
        default=None,
        help="processes of its own for the HTTP gateway (0: in each worker; default: 1 beside"
        " a single worker on 2+ CPUs with a fixed gRPC port, else 0)",
    )
    serve.add_argument(
        "--metrics-addr", help="env NOTES_METRICS_ADDR (127.0.0.1:9464; empty: no metrics)"
    )
    serve.add_argument("--tls-cert", help="env NOTES_TLS_CERT: PEM certificate chain")
    serve.add_argument("--tls-key", help="env NOTES_TLS_KEY: PEM private key")
    serve.set_defaults(func=cmd_serve)

    gateway = sub.add_parser("gateway", help="run the HTTP gateway against a remote service")
    gateway.add_argument("--target", required=True, help="the notes.v1 service, HOST:PORT")
    gateway.add_argument("--http-addr", help="env NOTES_HTTP_ADDR (127.0.0.1:8080)")
    gateway.set_defaults(func=cmd_gateway)

    sub.add_parser("migrate", parents=[common], help="upgrade the schema").set_defaults(
        func=cmd_migrate
    )

    keys = sub.add_parser("keys", help="API keys").add_subparsers(
        dest="keys_command", required=True
    )
    create = keys.add_parser("create", parents=[common])
    create.add_argument("--org", required=True)
    create.add_argument("--actor-id", required=True)
    create.add_argument("--display-name", required=True)
    create.add_argument(
        "--scopes",
        default="notes:read,notes:write",
        help="comma-separated: " + ",".join(s.value for s in Scope),
    )
    create.add_argument("--purpose", required=True)
    create.add_argument("--expires-in", type=int, help="seconds")
    revoke = keys.add_parser("revoke", parents=[common])
    revoke.add_argument("key_id")
    listing = keys.add_parser("list", parents=[common])
    listing.add_argument("--org", required=True)
    reseal = keys.add_parser(
        "reseal", parents=[common], help="seal every secret with the first NOTES_SECRET_KEYS key"
    )
    for p in (create, revoke, listing, reseal):
        p.set_defaults(func=cmd_keys)

    token = sub.add_parser("token", parents=[common], help="mint an HS256 JWT")
    token.add_argument("--org", required=True)
    token.add_argument("--actor-id", required=True)
    token.add_argument(
        "--scopes",
        default="notes:read,notes:write",
        help="comma-separated: " + ",".join(s.value for s in Scope),
    )
    token.add_argument("--ttl", type=int, default=3600, help="seconds")
    token.add_argument("--name", help="display name claim")
    token.set_defaults(func=cmd_token)

    subjects = sub.add_parser("subjects", help="the subject registry").add_subparsers(
        dest="subjects_command", required=True
    )
    put = subjects.add_parser("put", parents=[common])
    put.add_argument("--org", required=True)
    put.add_argument("--type", required=True)
    put.add_argument("--id", required=True)
    put.add_argument("--parent-type")
    put.add_argument("--parent-id")
    put.add_argument("--display-name")
    archive = subjects.add_parser("archive", parents=[common])
    archive.add_argument("--org", required=True)
    archive.add_argument("--type", required=True)
    archive.add_argument("--id", required=True)
    listing = subjects.add_parser("list", parents=[common])
    listing.add_argument("--org", required=True)
    listing.add_argument("--type")
    listing.add_argument("--parent-id")
    listing.add_argument("--show-archived", action="store_true")
    erase = subjects.add_parser("erase", parents=[common], help="erase a subject and its notes")
    erase.add_argument("--org", required=True)
    erase.add_argument("--type", required=True)
    erase.add_argument("--id", required=True)
    for p in (put, archive, listing, erase):
        p.set_defaults(func=cmd_subjects)

    retention = sub.add_parser(
        "purge-deleted", parents=[common], help="erase notes soft-deleted longer ago than a period"
    )
    retention.add_argument(
        "--older-than",
        type=int,
        default=None,
        help="seconds (default NOTES_DELETED_RETENTION_DAYS days, 30)",
    )
    retention.set_defaults(func=cmd_purge_deleted)

    export = sub.add_parser("export", parents=[common], help="an organization's notes as JSONL")
    export.add_argument("--org", required=True)
    export.add_argument("--out", help="file (default: standard output)")
    export.set_defaults(func=cmd_export)

    importing = sub.add_parser("import", parents=[common], help="notes from JSON Lines")
    importing.add_argument("--org", required=True)
    importing.add_argument(
        "--format", choices=["notes", "woocommerce", "newstore", "customer-notes"], default="notes"
    )
    importing.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    importing.add_argument("file", help="a JSON Lines file, or - for standard input")
    importing.set_defaults(func=cmd_import)

    purge = sub.add_parser(
        "purge-requests", parents=[common], help="forget request ids older than a period"
    )
    purge.add_argument("--older-than", type=int, default=7 * 24 * 3600, help="seconds")
    purge.set_defaults(func=cmd_purge_requests)

    sub.add_parser(
        "purge-events",
        parents=[common],
        help="delete change-feed events older than NOTES_EVENT_RETENTION_DAYS",
    ).set_defaults(func=cmd_purge_events)
    hooks = sub.add_parser("webhooks", help="webhooks (Standard Webhooks)").add_subparsers(
        dest="webhooks_command", required=True
    )
    hook_create = hooks.add_parser("create", parents=[common])
    hook_create.add_argument("--org", required=True)
    hook_create.add_argument("--url", required=True)
    hook_create.add_argument("--events", help="comma-separated event types; default: all")
    hook_create.add_argument("--disabled", action="store_true", help="create it disabled")
    hook_list = hooks.add_parser("list", parents=[common])
    hook_list.add_argument("--org", required=True)
    hook_delete = hooks.add_parser("delete", parents=[common])
    hook_delete.add_argument("id")
    hook_deliveries = hooks.add_parser("deliveries", parents=[common])
    hook_deliveries.add_argument("id")
    for p in (hook_create, hook_list, hook_delete, hook_deliveries):
        p.set_defaults(func=cmd_webhooks)

    deliver = sub.add_parser("deliver", parents=[common], help="only deliver webhooks")
    deliver.set_defaults(func=cmd_deliver)

    audit = sub.add_parser("audit", parents=[common], help="a note's audit trail")
    audit.add_argument("note_id")
    audit.add_argument("--org", required=True)
    audit.set_defaults(func=cmd_audit)
    return parser


def main(argv: list[str] | None = None) -> int:
    logs.configure()
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ValidationFailed as e:
        for field, description in e.violations:
            print(f"error: {field} {description}", file=sys.stderr)
        return 2
    except DomainError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return 1
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
