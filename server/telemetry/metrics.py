"""Prometheus metrics (prometheus-client), served at /metrics on NOTES_METRICS_ADDR.

The gRPC names and labels are py-grpc-prometheus's (grpc_server_started_total,
grpc_server_handled_total, grpc_server_handling_seconds); the HTTP ones follow Prometheus'
conventions (http_server_requests_total, http_server_request_duration_seconds); the store's are
notes_store_*. With `--workers N` every worker writes its values to files in
PROMETHEUS_MULTIPROC_DIR, which the parent sets to a fresh directory before it forks and reads
(MultiProcessCollector) when scraped: one scrape sums all workers.

prometheus-client decides at import whether values live in memory or in those files, so it
is imported, and the metrics made, on first use (get()), never at import of this module.

Webhook deliveries: attempts by result (notes_webhook_deliveries_total) and the deliveries
pending in the database (notes_webhook_deliveries_pending, read by the delivery worker).
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from ..config import split_addr

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Where requests that take ~1 ms to ~10 s land: prometheus-client's defaults start at 5 ms.
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class Metrics:
    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        grpc_labels = ("grpc_type", "grpc_service", "grpc_method")
        self.grpc_started = Counter(
            "grpc_server_started", "RPCs started on the server.", grpc_labels
        )
        self.grpc_handled = Counter(
            "grpc_server_handled",
            "RPCs completed on the server, whatever their status.",
            (*grpc_labels, "grpc_code"),
        )
        self.grpc_seconds = Histogram(
            "grpc_server_handling_seconds",
            "Time the server took to handle an RPC, until its status.",
            grpc_labels,
            buckets=LATENCY_BUCKETS,
        )
        http_labels = ("dialect", "method", "route", "status")
        self.http_requests = Counter(
            "http_server_requests", "HTTP requests the gateway answered.", http_labels
        )
        self.http_seconds = Histogram(
            "http_server_request_duration_seconds",
            "Time the gateway took to answer an HTTP request.",
            http_labels,
            buckets=LATENCY_BUCKETS,
        )
        self.store_connections = Gauge(
            "notes_store_connections_in_use",
            "Database connections taken from the pool by a unit of work.",
            multiprocess_mode="livesum",
        )
        self.store_rollbacks = Counter(
            "notes_store_transactions_rolled_back", "Write transactions rolled back."
        )
        self.webhook_deliveries = Counter(
            "notes_webhook_deliveries",
            "Webhook delivery attempts by result: delivered, retrying (to be attempted again)"
            " or failed (no attempt left).",
            ("result",),
        )
        self.webhook_pending = Gauge(
            "notes_webhook_deliveries_pending",
            "Webhook deliveries pending in the database (every organization), as last counted.",
            multiprocess_mode="livemax",
        )
        self.store_writer_wait = Histogram(
            "notes_store_writer_queue_wait_seconds",
            "Time SQLite writers waited for their turn (one writer at a time).",
            buckets=LATENCY_BUCKETS,
        )


_metrics: Metrics | None = None
_lock = threading.Lock()


def get() -> Metrics:
    global _metrics
    if _metrics is None:
        with _lock:
            if _metrics is None:
                _metrics = Metrics()
    return _metrics


class _Quiet(WSGIRequestHandler):
    def log_message(self, format, *args) -> None:  # noqa: A002 - the scrape is not news
        pass


class _Server(WSGIServer):
    daemon_threads = True

    def process_request(self, request, client_address) -> None:
        # One thread per scrape, so a slow scraper holds up nobody.
        threading.Thread(
            target=self._serve_one, args=(request, client_address), daemon=True
        ).start()

    def _serve_one(self, request, client_address) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:  # noqa: BLE001
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)


class MetricsServer:
    """/metrics on addr: bound at construction (so the port is known, e.g. before forking
    workers), serving from start()."""

    def __init__(self, addr: str, *, multiprocess: bool = False) -> None:
        from prometheus_client import REGISTRY, CollectorRegistry, make_wsgi_app
        from prometheus_client import multiprocess as mp

        if multiprocess:
            registry = CollectorRegistry()
            mp.MultiProcessCollector(registry)
        else:
            registry = REGISTRY
        host, port = split_addr(addr)
        server_class = _Server
        if ":" in host:
            server_class = type("_Server6", (_Server,), {"address_family": socket.AF_INET6})
        self._httpd = make_server(
            host, port, make_wsgi_app(registry), server_class=server_class, handler_class=_Quiet
        )
        self.port: int = self._httpd.server_address[1]
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="metrics", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
        self._httpd.server_close()

    def forget(self) -> None:
        """In a forked child: close the inherited listening socket, serve nothing."""
        self._httpd.socket.close()


def multiprocess_dir() -> str:
    """A fresh directory for the workers' files, named in the environment before any
    worker (or this process) imports prometheus-client."""
    path = tempfile.mkdtemp(prefix="notes-metrics-")
    os.environ[MULTIPROC_ENV] = path
    return path


def worker_exited(pid: int) -> None:
    """A worker's live gauges stop counting once it is gone."""
    from prometheus_client import multiprocess as mp

    mp.mark_process_dead(pid)


def remove_dir(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)
