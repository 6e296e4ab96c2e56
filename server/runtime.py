"""Running the service: gRPC and the HTTP gateway in one process, or N forked workers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import logging.handlers
import os
import queue
import signal
import socket
import sys
import time

import uvicorn
from grpc_health.v1 import health_pb2

from .config import Settings
from .store import db, migrations, repository
from .telemetry import metrics, tracing

log = logging.getLogger("notes")


def _split_addr(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def http_socket(addr: str, reuse_port: bool) -> socket.socket:
    host, port = _split_addr(addr)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted connections only for sockets
    # that say they are TCP, and without it every response waits ~40 ms on delayed ACKs.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def run_http(
    app,
    settings: Settings,
    on_signal,
    on_started,
    reuse_port: bool = False,
    delay: float = 0.0,
) -> None:
    """Serves app until a signal, or delay seconds after it (a second signal ends the delay);
    then refuses new connections and gives in-flight requests the grace period to finish."""
    sock = http_socket(settings.http_addr, reuse_port)
    config = uvicorn.Config(
        app,
        log_level="warning",
        log_config=None,  # uvicorn's loggers reach the root's JSON handler
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=max(1, int(settings.grace_seconds)),
        h11_max_incomplete_event_size=64 * 1024,
        **(
            {"ssl_certfile": settings.tls_cert, "ssl_keyfile": settings.tls_key}
            if settings.tls
            else {}
        ),
    )
    http = _HttpServer(config, on_signal, delay)

    async def main() -> None:
        task = asyncio.create_task(http.serve(sockets=[sock]))
        while not http.started and not task.done():
            await asyncio.sleep(0.01)
        if http.started:
            on_started(sock.getsockname()[1])
        await task

    asyncio.run(main())


class _HttpServer(uvicorn.Server):
    """uvicorn that tells us about SIGTERM/SIGINT first, goes on serving for delay seconds
    after the first one (or until a second), and does not re-raise the signal."""

    def __init__(self, config: uvicorn.Config, on_signal, delay: float = 0.0) -> None:
        super().__init__(config)
        self._on_signal = on_signal
        self._delay = delay
        self._drain_at: float | None = None

    def handle_exit(self, sig, frame) -> None:
        # Recorded before on_signal turns health: a second signal, sent by someone who saw it
        # turn, may run its handler nested in this one.
        if self._drain_at is None and not self.should_exit and self._delay > 0:
            self._drain_at = time.monotonic() + self._delay
        else:
            self.should_exit = True
        self._on_signal()

    async def on_tick(self, counter: int) -> bool:
        if self._drain_at is not None and time.monotonic() >= self._drain_at:
            self.should_exit = True
        return await super().on_tick(counter)


@contextlib.contextmanager
def _log_off_the_request_path():
    """Request threads only enqueue log records; one thread writes them. Writing from the
    request threads serialized them on the handler's lock (py-spy: ~30% of ListNotes under
    load). Started per process, so forked workers each get their own writer thread."""
    root = logging.getLogger()
    handlers = root.handlers[:]
    records: queue.SimpleQueue = queue.SimpleQueue()
    listener = logging.handlers.QueueListener(records, *handlers, respect_handler_level=True)
    root.handlers = [logging.handlers.QueueHandler(records)]
    listener.start()
    try:
        yield
    finally:
        listener.stop()  # writes what is queued
        root.handlers = handlers


_WHOLE_SERVER = health_pb2.HealthCheckRequest(service="")


def serve(settings: Settings, *, reuse_port: bool = False) -> int:
    """Serves until SIGTERM/SIGINT: NOT_SERVING first (gRPC health and the gateway's /healthz),
    then after NOTES_SHUTDOWN_DELAY_SECONDS (or a second signal) HTTP drained, then gRPC."""
    with _log_off_the_request_path():
        tracing.configure(settings.traces_exporter)
        try:
            return _serve(settings, reuse_port)
        finally:
            tracing.shutdown()


def _serve(settings: Settings, reuse_port: bool) -> int:
    from .gateway.app import create_app
    from .rpc import convert
    from .rpc.server import create_server

    metrics_server = None
    if settings.metrics_addr and not settings.metrics_port:  # else the parent serves them
        metrics_server = metrics.MetricsServer(settings.metrics_addr)
        metrics_server.start()
        settings.metrics_port = metrics_server.port

    engine = db.open_database(settings.database_url, pool_size=settings.threads + 4)
    migrations.migrate(engine)
    for memo in (repository.DECODED, convert.RENDERED):
        memo.resize(settings.note_cache)
    running = create_server(settings, reuse_port=reuse_port)
    running.server.start()
    event = {"pid": os.getpid(), "grpc_port": running.port, "tls": settings.tls}
    if settings.metrics_port:
        event["metrics_port"] = settings.metrics_port

    def serving() -> bool:
        # The gRPC health servicer's own answer is the one record of whether this process
        # serves: /healthz reads it too, so both turn at the same moment.
        status = running.health.Check(_WHOLE_SERVER, None).status
        return status == health_pb2.HealthCheckResponse.SERVING

    def begin_shutdown() -> None:
        if not serving():
            return  # a second signal
        running.health.enter_graceful_shutdown()
        log.info("not_serving")

    def started(http_port: int | None = None) -> None:
        if http_port is not None:
            event["http_port"] = http_port
        log.info("serving", extra={**event, "database": db.redact(settings.database_url)})

    if settings.http_enabled:
        app = create_app(f"127.0.0.1:{running.port}", settings, serving)
        run_http(
            app, settings, begin_shutdown, started, reuse_port, settings.shutdown_delay_seconds
        )
    else:
        # SimpleQueue.put is reentrant: safe in a handler whatever the main thread is doing
        # (threading.Event.set is not: it can deadlock on the lock its own wait() holds).
        signals: queue.SimpleQueue = queue.SimpleQueue()

        def on_signal(signum, frame) -> None:
            signals.put(signum)

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        started()
        _next_signal(signals, None)
        begin_shutdown()
        # Still serving, health NOT_SERVING, until the delay ends or a second signal.
        _next_signal(signals, settings.shutdown_delay_seconds)
    stopped = running.stop(settings.grace_seconds)
    log.info("draining", extra={"grace_seconds": settings.grace_seconds})
    stopped.wait()
    db.close()
    if metrics_server is not None:
        metrics_server.close()
    log.info("stopped", extra={"pid": os.getpid()})
    return 0


def _next_signal(signals: queue.SimpleQueue, timeout: float | None) -> bool:
    """Whether a signal came within timeout (None: however long it takes). Waits in steps of
    0.1 s: Python runs signal handlers in the main thread, and a signal the kernel handed to
    another thread (one of gRPC's) does not wake the main thread from a lock wait, so without
    the steps the handler would run only when the wait ended."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        step = 0.1 if deadline is None else min(0.1, deadline - time.monotonic())
        if step <= 0:
            return False
        try:
            signals.get(timeout=step)
            return True
        except queue.Empty:
            pass


def serve_workers(settings: Settings, workers: int) -> int:
    """Forks the workers before any gRPC object or database connection exists; each binds the
    same ports with SO_REUSEPORT and has its own pool. The parent forwards SIGTERM/SIGINT and
    serves /metrics for them all (prometheus-client's multiprocess mode)."""
    metrics_dir = metrics_server = None
    if settings.metrics_addr:
        metrics_dir = metrics.multiprocess_dir()  # before anyone imports prometheus-client
        metrics_server = metrics.MetricsServer(settings.metrics_addr, multiprocess=True)
        settings.metrics_port = metrics_server.port
    # Migrate once, in a child, so the parent never holds a connection across fork.
    pid = os.fork()
    if pid == 0:
        engine = db.open_database(settings.database_url, pool_size=1)
        migrations.migrate(engine)
        os._exit(0)
    os.waitpid(pid, 0)
    children = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            if metrics_server is not None:
                metrics_server.forget()
            try:
                code = serve(settings, reuse_port=True)
            except BaseException:  # noqa: BLE001
                code = 1
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        children.append(pid)

    def forward(signum, frame) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    if metrics_server is not None:
        metrics_server.start()
    status = 0
    try:
        running = set(children)
        while running:  # in the order they exit, so a dead worker's gauges go at once
            child, code = os.waitpid(-1, 0)
            if child not in running:
                continue
            running.discard(child)
            status = status or os.waitstatus_to_exitcode(code)
            if metrics_server is not None:
                metrics.worker_exited(child)
    finally:
        if metrics_server is not None:
            metrics_server.close()
            metrics.remove_dir(metrics_dir)
    return status
