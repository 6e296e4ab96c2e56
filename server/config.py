"""Configuration: command-line flags over NOTES_* environment variables over defaults."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from .store.db import DEFAULT_URL

SECRET_FILE = Path("var/jwt-secret")


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


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
    default_org: str = field(default_factory=lambda: os.environ.get("NOTES_DEFAULT_ORG", "default"))
    threads: int = field(default_factory=lambda: _env_int("NOTES_THREADS", 16))
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

    def resolved_jwt_secret(self) -> str:
        """NOTES_JWT_SECRET, or a random secret kept in var/jwt-secret for local use."""
        if self.jwt_secret:
            return self.jwt_secret
        SECRET_FILE.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(SECRET_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # made earlier, or by a replica starting at the same moment
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(32) + "\n")
        self.jwt_secret = SECRET_FILE.read_text().strip()
        return self.jwt_secret
