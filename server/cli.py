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
    if args.workers > 1:
        return runtime.serve_workers(settings, args.workers)
    return runtime.serve(settings)


def cmd_gateway(args: argparse.Namespace) -> int:
    from . import runtime
    from .gateway.app import create_app
    from .telemetry import tracing

    settings = _settings(args)
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

    _open(_settings(args))
    if args.keys_command == "create":
        key = credentials.create_key(
            args.org,
            args.actor_id,
            args.display_name,
            [s for s in args.scopes.split(",") if s],
            args.purpose,
            args.expires_in,
        )
        _print({"key_id": key.key_id, "secret": key.secret})
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
    subject_type = _subject_type(args.type)
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


def cmd_audit(args: argparse.Namespace) -> int:
    from .store import repository as repo

    _open(_settings(args))
    with repo.reading():
        events = repo.list_events(args.org, args.note_id)
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
    from .store import repository as repo

    if args.older_than < MIN_REQUEST_ID_RETENTION:
        raise ValidationFailed(
            [("older_than", f"must be at least {MIN_REQUEST_ID_RETENTION} seconds (24 hours)")]
        )
    _open(_settings(args))
    with repo.writing():
        purged = repo.purge_requests(now_us() - args.older_than * 1_000_000)
    _print({"purged": purged})
    return 0


MIN_REQUEST_ID_RETENTION = 24 * 3600


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
    create.add_argument("--scopes", default="notes:read,notes:write")
    create.add_argument("--purpose", required=True)
    create.add_argument("--expires-in", type=int, help="seconds")
    revoke = keys.add_parser("revoke", parents=[common])
    revoke.add_argument("key_id")
    listing = keys.add_parser("list", parents=[common])
    listing.add_argument("--org", required=True)
    for p in (create, revoke, listing):
        p.set_defaults(func=cmd_keys)

    token = sub.add_parser("token", parents=[common], help="mint an HS256 JWT")
    token.add_argument("--org", required=True)
    token.add_argument("--actor-id", required=True)
    token.add_argument("--scopes", default="notes:read,notes:write")
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
    put.set_defaults(func=cmd_subjects)
    archive.set_defaults(func=cmd_subjects)

    purge = sub.add_parser(
        "purge-requests", parents=[common], help="forget request ids older than a period"
    )
    purge.add_argument("--older-than", type=int, default=7 * 24 * 3600, help="seconds")
    purge.set_defaults(func=cmd_purge_requests)

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
