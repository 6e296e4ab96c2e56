"""Configuration: command-line flags over NOTES_* environment variables over defaults."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from .store.db import DEFAULT_URL

SECRET_FILE = Path("var/jwt-secret")
SECRET_KEYS_FILE = Path("var/secret-keys")


def split_addr(addr: str) -> tuple[str, int]:
    """host:port (IPv6 in brackets) as host and port; no host: 127.0.0.1; port 0: any free."""
    host, _, port = addr.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def _env_optional_int(name: str) -> int | None:
    value = os.environ.get(name)
    return int(value) if value else None


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


def _env_floats(name: str, default: tuple[float, ...]) -> tuple[float, ...]:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    return tuple(float(part) for part in value.split(",") if part.strip())


MAX_WATCHERS = 4
SPARE_STREAM_THREADS = 4

# Standard Webhooks' schedule: after the first attempt, retries this many seconds later.
WEBHOOK_RETRY_SECONDS = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)


@dataclass
class Settings:
    grpc_addr: str = field(
        default_factory=lambda: os.environ.get("NOTES_GRPC_ADDR", "127.0.0.1:50051")
    )
    http_addr: str = field(
        default_factory=lambda: os.environ.get("NOTES_HTTP_ADDR", "127.0.0.1:8080")
    )
    database_url: str = field(
        default_factory=lambda: os.environ.get("NOTES_DATABASE_URL", DEFAULT_URL)
    )
    jwt_secret: str = field(default_factory=lambda: os.environ.get("NOTES_JWT_SECRET", ""))
    # Fernet keys sealing API key secrets (OAuth 1.0a needs them back): the first seals, all
    # open, so a new key goes first and old ones stay until `notes keys reseal` has run.
    secret_keys: str = field(default_factory=lambda: os.environ.get("NOTES_SECRET_KEYS", ""))

    # Signs the surface (x-notes-surface) the gateway names on its calls to the service.
    gateway_secret: str = field(default_factory=lambda: os.environ.get("NOTES_GATEWAY_SECRET", ""))
    default_org: str = field(default_factory=lambda: os.environ.get("NOTES_DEFAULT_ORG", "default"))
    # Threads answering unary calls other than reads (writes wait for their commit on these;
    # SQLite's group commit gathers the writers that wait at once).
    threads: int = field(default_factory=lambda: _env_int("NOTES_THREADS", 16))
    # Threads answering unary reads (interceptors.READ_METHODS). Few: a read is Python and a
    # short database call, and every thread more hands the GIL round once more per database
    # call (what that costs: docs/benchmarks.md, "GetNote and ListNotes against the floor").
    # Streaming calls (WatchEvents, reflection) have threads of their own (stream_threads()),
    # health checks two more.
    read_threads: int = field(default_factory=lambda: _env_int("NOTES_READ_THREADS", 4))
    max_concurrent_rpcs: int = field(
        default_factory=lambda: _env_int("NOTES_MAX_CONCURRENT_RPCS", 64)
    )
    grace_seconds: float = field(default_factory=lambda: _env_float("NOTES_GRACE_SECONDS", 10.0))
    # After SIGTERM, how long to go on serving while health says NOT_SERVING (gRPC) and 503
    # (/healthz), so load balancers move away before the listeners close; a second signal
    # ends it at once.
    shutdown_delay_seconds: float = field(
        default_factory=lambda: _env_float("NOTES_SHUTDOWN_DELAY_SECONDS", 0.0)
    )
    max_message_bytes: int = field(
        default_factory=lambda: _env_int("NOTES_MAX_MESSAGE_BYTES", 4 * 1024 * 1024)
    )
    shop_timezone: str = field(default_factory=lambda: os.environ.get("NOTES_SHOP_TIMEZONE", "UTC"))
    public_base_url: str = field(
        default_factory=lambda: os.environ.get("NOTES_PUBLIC_BASE_URL", "")
    )
    app_base_url: str = field(default_factory=lambda: os.environ.get("NOTES_APP_BASE_URL", ""))
    rate_limit_reads: int = field(
        default_factory=lambda: _env_int("NOTES_RATE_LIMIT_READS_PER_MINUTE", 0)
    )
    rate_limit_writes: int = field(
        default_factory=lambda: _env_int("NOTES_RATE_LIMIT_WRITES_PER_MINUTE", 0)
    )
    note_cache: int = field(default_factory=lambda: _env_int("NOTES_NOTE_CACHE", 10_000))
    # HTTP: how long a connection may take to send a complete request head, how long an idle
    # keep-alive connection is kept, and how many connections are open at once (more are
    # accepted and closed at once).
    http_header_timeout_seconds: float = field(
        default_factory=lambda: _env_float("NOTES_HTTP_HEADER_TIMEOUT_SECONDS", 10.0)
    )
    http_keepalive_seconds: float = field(
        default_factory=lambda: _env_float("NOTES_HTTP_KEEPALIVE_SECONDS", 5.0)
    )
    http_max_connections: int = field(
        default_factory=lambda: _env_int("NOTES_HTTP_MAX_CONNECTIONS", 1000)
    )
    # uvicorn's HTTP/1.1 parser (httptools: llhttp in C; h11: pure Python) and event loop
    # (uvloop or asyncio's own). Both pairs enforce the same bounds (server/runtime.py).
    http_parser: str = field(
        default_factory=lambda: os.environ.get("NOTES_HTTP_PARSER", "httptools")
    )
    http_loop: str = field(default_factory=lambda: os.environ.get("NOTES_HTTP_LOOP", "uvloop"))
    # Processes of its own for the HTTP gateway under `notes serve` (0: the gateway runs in
    # each serving process, beside gRPC and under the same GIL); None: gateway_processes().
    gateway_workers: int | None = field(
        default_factory=lambda: _env_optional_int("NOTES_GATEWAY_WORKERS")
    )
    # gRPC: the same bounds on connections, and on what one connection may hold. The age is
    # long so that server streams (WatchEvents) run for half an hour; clients then reconnect
    # (with their cursor) while the grace lets calls in flight finish.
    grpc_max_connections: int = field(
        default_factory=lambda: _env_int("NOTES_GRPC_MAX_CONNECTIONS", 1000)
    )
    grpc_handshake_timeout_seconds: float = field(
        default_factory=lambda: _env_float("NOTES_GRPC_HANDSHAKE_TIMEOUT_SECONDS", 10.0)
    )
    grpc_idle_seconds: float = field(
        default_factory=lambda: _env_float("NOTES_GRPC_IDLE_SECONDS", 300.0)
    )
    grpc_max_connection_age_seconds: float = field(
        default_factory=lambda: _env_float("NOTES_GRPC_MAX_CONNECTION_AGE_SECONDS", 1800.0)
    )
    grpc_max_connection_age_grace_seconds: float = field(
        default_factory=lambda: _env_float("NOTES_GRPC_MAX_CONNECTION_AGE_GRACE_SECONDS", 60.0)
    )
    grpc_min_ping_interval_seconds: float = field(
        default_factory=lambda: _env_float("NOTES_GRPC_MIN_PING_INTERVAL_SECONDS", 30.0)
    )
    grpc_max_concurrent_streams: int = field(
        default_factory=lambda: _env_int("NOTES_GRPC_MAX_CONCURRENT_STREAMS", 100)
    )
    # PostgreSQL: a statement running longer is cut (0: no limit).
    db_statement_timeout_ms: int = field(
        default_factory=lambda: _env_int("NOTES_DB_STATEMENT_TIMEOUT_MS", 10_000)
    )
    # notes purge-deleted erases notes soft-deleted longer ago than this.
    deleted_retention_days: int = field(
        default_factory=lambda: _env_int("NOTES_DELETED_RETENTION_DAYS", 30)
    )
    # The change feed (README "Events").
    event_retention_days: int = field(
        default_factory=lambda: _env_int("NOTES_EVENT_RETENTION_DAYS", 30)
    )
    event_heartbeat_seconds: float = field(
        default_factory=lambda: _env_float("NOTES_EVENT_HEARTBEAT_SECONDS", 15.0)
    )
    event_poll_seconds: float = field(
        default_factory=lambda: _env_float("NOTES_EVENT_POLL_SECONDS", 0.25)
    )
    event_purge_interval_seconds: float = field(
        default_factory=lambda: _env_float("NOTES_EVENT_PURGE_INTERVAL_SECONDS", 3600.0)
    )
    # Each WatchEvents stream holds one of the stream threads; 0: the default.
    max_watchers: int = field(default_factory=lambda: _env_int("NOTES_MAX_WATCHERS", 0))
    events_nats_url: str = field(
        default_factory=lambda: os.environ.get("NOTES_EVENTS_NATS_URL", "")
    )
    events_nats_stream: str = field(
        default_factory=lambda: os.environ.get("NOTES_EVENTS_NATS_STREAM", "NOTES")
    )
    events_nats_subject_prefix: str = field(
        default_factory=lambda: os.environ.get("NOTES_EVENTS_NATS_SUBJECT_PREFIX", "notes")
    )
    # Webhooks (server/delivery.py): whether `notes serve` delivers, with how many threads.
    webhook_delivery: bool = field(
        default_factory=lambda: os.environ.get("NOTES_WEBHOOK_DELIVERY", "1") != "0"
    )
    webhook_workers: int = field(default_factory=lambda: _env_int("NOTES_WEBHOOK_WORKERS", 4))
    webhook_timeout_seconds: float = field(
        default_factory=lambda: _env_float("NOTES_WEBHOOK_TIMEOUT_SECONDS", 10.0)
    )
    webhook_retry_seconds: tuple[float, ...] = field(
        default_factory=lambda: _env_floats("NOTES_WEBHOOK_RETRY_SECONDS", WEBHOOK_RETRY_SECONDS)
    )
    webhook_poll_seconds: float = field(
        default_factory=lambda: _env_float("NOTES_WEBHOOK_POLL_SECONDS", 0.25)
    )
    # 1: webhook URLs may name loopback and private addresses (tests, single-host setups).
    webhook_allow_private: bool = field(
        default_factory=lambda: os.environ.get("NOTES_WEBHOOK_ALLOW_PRIVATE", "") == "1"
    )
    # Prometheus /metrics (host:port; empty: no metrics at all).
    metrics_addr: str = field(
        default_factory=lambda: os.environ.get("NOTES_METRICS_ADDR", "127.0.0.1:9464")
    )
    # Traces: the standard variable names the exporters (none, console, otlp; comma separated);
    # the OpenTelemetry SDK reads the other OTEL_* ones itself (server/telemetry/tracing.py).
    traces_exporter: str = field(
        default_factory=lambda: os.environ.get("OTEL_TRACES_EXPORTER", "none")
    )
    # TLS for both ports (PEM files); the gateway verifies the service it calls with
    # gateway_ca_file (PEM CA bundle; empty: the system's roots).
    tls_cert: str = field(default_factory=lambda: os.environ.get("NOTES_TLS_CERT", ""))
    tls_key: str = field(default_factory=lambda: os.environ.get("NOTES_TLS_KEY", ""))
    gateway_ca_file: str = field(
        default_factory=lambda: os.environ.get("NOTES_GATEWAY_CA_FILE", "")
    )
    http_enabled: bool = True
    # Set by `serve --workers`: the parent serves /metrics for all workers on this port.
    metrics_port: int = 0

    @property
    def tls(self) -> bool:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("TLS needs both NOTES_TLS_CERT and NOTES_TLS_KEY")
        return bool(self.tls_cert)

    def effective_max_watchers(self) -> int:
        return self.max_watchers if self.max_watchers > 0 else MAX_WATCHERS

    def stream_threads(self) -> int:
        """Threads for streaming calls: one per watcher, and spare ones, so that reflection
        streams and the refusal of a watcher past the cap never wait for a watcher to end."""
        return self.effective_max_watchers() + SPARE_STREAM_THREADS

    def pool_size(self) -> int:
        """Database connections a serving process may hold at once: one per unary thread and
        per watcher, one per webhook delivery thread, and a few for background work (purges,
        publishing)."""
        webhooks = self.webhook_workers if self.webhook_delivery else 0
        calls = self.threads + self.read_threads + self.effective_max_watchers()
        return calls + webhooks + 4

    def resolved_secret_keys(self) -> list[str]:
        """NOTES_SECRET_KEYS (comma-separated), or one key kept in var/secret-keys."""
        if not self.secret_keys:
            from cryptography.fernet import Fernet

            _make_once(SECRET_KEYS_FILE, Fernet.generate_key().decode())
            self.secret_keys = SECRET_KEYS_FILE.read_text().strip()
        return [k.strip() for k in self.secret_keys.split(",") if k.strip()]

    def resolved_jwt_secret(self) -> str:
        """NOTES_JWT_SECRET, or a random secret kept in var/jwt-secret for local use."""
        if self.jwt_secret:
            return self.jwt_secret
        _make_once(SECRET_FILE, secrets.token_urlsafe(32))
        self.jwt_secret = SECRET_FILE.read_text().strip()
        return self.jwt_secret

    def gateway_processes(self, workers: int) -> int:
        """How many gateway processes `notes serve --workers N` runs: NOTES_GATEWAY_WORKERS (or
        --gateway-workers) when given; else one beside a single worker on a machine of two or
        more CPUs, where it serves faster than the gateway inside the worker
        (docs/benchmarks.md, "The gateway's CPU per request"), if the gRPC port is fixed (a
        gateway process must know where to call); else none."""
        if not self.http_enabled:
            return 0
        if self.gateway_workers is not None:
            return self.gateway_workers
        fixed_port = split_addr(self.grpc_addr)[1] != 0
        return 1 if workers == 1 and (os.cpu_count() or 1) >= 2 and fixed_port else 0

    def resolved_gateway_secret(self) -> bytes:
        """NOTES_GATEWAY_SECRET, or a key derived from the JWT secret (so `make run` and a
        gateway sharing NOTES_JWT_SECRET need nothing more)."""
        if self.gateway_secret:
            return self.gateway_secret.encode()
        derive = b"notes.v1 gateway surface signature"
        return hmac.new(self.resolved_jwt_secret().encode(), derive, hashlib.sha256).digest()


def _make_once(path: Path, content: str) -> None:
    """Writes a secret file (mode 600) unless it exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # made earlier, or by a replica starting at the same moment
    with os.fdopen(fd, "w") as f:
        f.write(content + "\n")
