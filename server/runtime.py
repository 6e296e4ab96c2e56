"""Running the service: gRPC and the HTTP gateway in one process, or N forked workers."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import logging.handlers
import os
import queue
import resource
import signal
import socket
import sys
import time

import h11
import uvicorn
from grpc_health.v1 import health_pb2
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .config import Settings, split_addr
from .store import db, migrations
from .store import notes as note_store
from .telemetry import metrics, tracing

log = logging.getLogger("notes")


def http_socket(addr: str, reuse_port: bool) -> socket.socket:
    host, port = split_addr(addr)
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
    protocol = bounded_protocol(
        settings.http_parser, settings.http_header_timeout_seconds, settings.http_max_connections
    )
    config = uvicorn.Config(
        app,
        http=protocol,
        log_level="warning",
        log_config=None,  # uvicorn's loggers reach the root's JSON handler
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=max(1, int(settings.grace_seconds)),
        timeout_keep_alive=max(1, int(settings.http_keepalive_seconds)),
        h11_max_incomplete_event_size=HEAD_LIMIT,
        **(
            {"ssl_certfile": settings.tls_cert, "ssl_keyfile": settings.tls_key}
            if settings.tls
            else {}
        ),
    )
    http = _HttpServer(config, on_signal, delay)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(_AcceptFailures(loop.default_exception_handler))
        task = asyncio.create_task(http.serve(sockets=[sock]))
        while not http.started and not task.done():
            await asyncio.sleep(0.01)
        if http.started:
            on_started(sock.getsockname()[1])
        await task

    if settings.http_loop == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(main())
    else:
        asyncio.run(main())


# The most a request head may take before its end (h11: the largest incomplete event).
HEAD_LIMIT = 64 * 1024


def bounded_protocol(parser: str, header_timeout: float, max_connections: int) -> type:
    """uvicorn's protocol for parser (h11 or httptools) with the bounds it lacks: a
    connection gets header_timeout seconds to send each complete request head (uvicorn starts
    no timer until a first response, and a byte now and then keeps a connection forever), and
    past max_connections open connections a new one is closed as soon as it is accepted.
    httptools also gets h11's bound on the size of a head (h11_max_incomplete_event_size:
    llhttp has none, and would buffer a head that never ends)."""
    if parser == "h11":
        return bounded_h11(header_timeout, max_connections)
    if parser == "httptools":
        return bounded_httptools(header_timeout, max_connections)
    raise ValueError(f"NOTES_HTTP_PARSER: {parser!r} is neither h11 nor httptools")


class _Bounded:
    """The bounds, on top of either of uvicorn's protocols (the class after it in the MRO):
    subclasses say whether the connection owes us a request head."""

    header_timeout: float
    max_connections: int
    _head_timer: asyncio.TimerHandle | None = None
    _refused = False

    def owes_head(self) -> bool:
        raise NotImplementedError

    def connection_made(self, transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.max_connections:
            self._refused = True
            transport.abort()
            return
        super().connection_made(transport)
        self._watch_head()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._refused:
            return
        if self._head_timer is not None:
            self._head_timer.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch_head()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch_head()

    def _watch_head(self) -> None:
        """A timer runs while the connection owes us a request head."""
        waiting = self.owes_head() and not self.transport.is_closing()
        if waiting and self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_timeout, self._head_late)
        elif not waiting and self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        if self.owes_head() and not self.transport.is_closing():
            self.transport.close()


def bounded_h11(header_timeout: float, max_connections: int) -> type[H11Protocol]:
    class BoundedH11(_Bounded, H11Protocol):
        def owes_head(self) -> bool:
            return self.conn.their_state is h11.IDLE

    BoundedH11.header_timeout, BoundedH11.max_connections = header_timeout, max_connections
    return BoundedH11


def bounded_httptools(header_timeout: float, max_connections: int) -> type[HttpToolsProtocol]:
    class BoundedHttpTools(_Bounded, HttpToolsProtocol):
        _in_head = False  # between the first byte of a head and its end
        _head_bytes = 0

        def owes_head(self) -> bool:
            # No request in flight nor queued: h11's IDLE.
            return (self.cycle is None or self.cycle.response_complete) and not self.pipeline

        def on_message_begin(self) -> None:
            self._in_head = True
            super().on_message_begin()

        def on_headers_complete(self) -> None:
            self._in_head, self._head_bytes = False, 0
            super().on_headers_complete()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._in_head and not self.transport.is_closing():
                # Counted whole, though the chunk may have begun with the end of a pipelined
                # request before it: a bound a little early, never late.
                self._head_bytes += len(data)
                if self._head_bytes > HEAD_LIMIT:
                    self.send_400_response("Request head too large.")

    BoundedHttpTools.header_timeout = header_timeout
    BoundedHttpTools.max_connections = max_connections
    return BoundedHttpTools


class _AcceptFailures:
    """asyncio logs a traceback for every accept() that fails for want of file descriptors,
    and retries each second: one warning a minute instead, with the count."""

    EVERY = 60.0

    def __init__(self, default) -> None:
        self._default = default
        self._count = 0
        self._last = -self.EVERY

    def __call__(self, loop, context: dict) -> None:
        if "accept" not in context.get("message", "") or not isinstance(
            context.get("exception"), OSError
        ):
            self._default(context)
            return
        self._count += 1
        now = time.monotonic()
        if now - self._last >= self.EVERY:
            error = context["exception"]
            log.warning(
                "accept_failing",
                extra={
                    "port": "http",
                    "error": os.strerror(error.errno) if error.errno else str(error),
                    "failures": self._count,
                },
            )
            self._last, self._count = now, 0


def raise_open_file_limit() -> tuple[int, int, int]:
    """The soft limit on open files raised to the hard one: (soft before, soft now, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    raised = soft
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            raised = target
        except (ValueError, OSError):
            pass
    return soft, raised, hard


# Descriptors kept for everything but client connections and the database pool
# (Settings.pool_size): the gateway's channel, logs, listening sockets (gRPC, HTTP, metrics),
# gRPC's own, the webhook senders' connections.
FD_RESERVE = 96
# Descriptors one pooled database connection holds: SQLite's database, -wal and -shm files;
# PostgreSQL's socket.
FDS_PER_CONNECTION = {"sqlite": 3, "postgres": 1, "postgresql": 1}


def fit_open_files(settings: Settings) -> Settings:
    """Raises the open-file limit and caps each port's connections at half of what is left,
    so that however many connections one port is sent, the other still has descriptors."""
    before, soft, hard = raise_open_file_limit()
    scheme = settings.database_url.split(":", 1)[0]
    pool = settings.pool_size() * FDS_PER_CONNECTION.get(scheme, 3)
    budget = max(16, (soft - FD_RESERVE - pool) // 2)
    fitted = dataclasses.replace(
        settings,
        http_max_connections=max(1, min(settings.http_max_connections, budget)),
        grpc_max_connections=max(1, min(settings.grpc_max_connections, budget)),
    )
    log.info(
        "open_files",
        extra={
            "soft_limit_was": _limit(before),
            "soft_limit": _limit(soft),
            "hard_limit": _limit(hard),
            "http_max_connections": fitted.http_max_connections,
            "grpc_max_connections": fitted.grpc_max_connections,
        },
    )
    return fitted


def _limit(value: int) -> int | str:
    return "unlimited" if value == resource.RLIM_INFINITY else value


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


class _Enqueue(logging.handlers.QueueHandler):
    """QueueHandler.prepare formats and copies every record so that it could be pickled; this
    queue stays in the process, so a record without arguments or a traceback goes as it is
    (what that saves: docs/benchmarks.md, "Python per RPC")."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        if record.args or record.exc_info or record.stack_info:
            return super().prepare(record)
        return record


# How long the log writer lets records gather before it writes them (when there are none).
LOG_WRITE_PERIOD_SECONDS = 0.05


class _BatchingListener(logging.handlers.QueueListener):
    """Writes what has gathered, then waits LOG_WRITE_PERIOD_SECONDS before waiting for more:
    under load the writer thread wakes about twenty times a second instead of once a record
    (a futex wake and a turn of the GIL for every request's access line). A record that
    comes after a quiet spell is written at once; stop() still writes everything queued."""

    def dequeue(self, block: bool) -> logging.LogRecord:
        try:
            return self.queue.get_nowait()
        except queue.Empty:
            time.sleep(LOG_WRITE_PERIOD_SECONDS)
            return self.queue.get(block)


@contextlib.contextmanager
def _log_off_the_request_path():
    """Request threads only enqueue log records; one thread writes them. Writing from the
    request threads serialized them on the handler's lock, a large part of ListNotes' time
    under load (docs/benchmarks.md). Started per process, so forked workers each get their own
    writer thread."""
    root = logging.getLogger()
    handlers = root.handlers[:]
    records: queue.SimpleQueue = queue.SimpleQueue()
    listener = _BatchingListener(records, *handlers, respect_handler_level=True)
    root.handlers = [_Enqueue(records)]
    listener.start()
    try:
        yield
    finally:
        listener.stop()  # writes what is queued
        root.handlers = handlers


_WHOLE_SERVER = health_pb2.HealthCheckRequest(service="")


def serve(settings: Settings, *, reuse_port: bool = False, told_to_stop: bool = False) -> int:
    """Serves until SIGTERM/SIGINT: NOT_SERVING first (gRPC health and the gateway's /healthz),
    then after NOTES_SHUTDOWN_DELAY_SECONDS (or a second signal) HTTP drained, then gRPC.
    told_to_stop (gRPC only, beside gateway processes): after the first signal, serves on
    until a second one, which the parent sends once every gateway process has drained."""
    with _log_off_the_request_path():
        tracing.configure(settings.traces_exporter)
        try:
            return _serve(settings, reuse_port, told_to_stop)
        finally:
            tracing.shutdown()


def serve_gateway(settings: Settings, *, reuse_port: bool = False) -> int:
    """The gateway alone, in a process of its own, calling the service's gRPC port over
    loopback: /healthz turns 503 at the first SIGTERM/SIGINT, and after the delay (or a second
    signal) HTTP is drained."""
    with _log_off_the_request_path():
        tracing.configure(settings.traces_exporter)
        try:
            return _serve_gateway(settings, reuse_port)
        finally:
            tracing.shutdown()


def _serve_gateway(settings: Settings, reuse_port: bool) -> int:
    from .gateway.app import create_app

    settings = fit_open_files(settings)
    serving = [True]

    def begin_shutdown() -> None:
        if serving[0]:
            serving[0] = False
            log.info("not_serving")

    def started(http_port: int) -> None:
        log.info("serving", extra={"pid": os.getpid(), "http_port": http_port, "gateway": True})

    # Started beside the workers: start-up waits for their port (the channel's reconnect
    # backoff would otherwise fail the first requests).
    target = grpc_target(settings.grpc_addr)
    app = create_app(target, settings, lambda: serving[0], wait_for_service=GATEWAY_START_SECONDS)
    run_http(app, settings, begin_shutdown, started, reuse_port, settings.shutdown_delay_seconds)
    log.info("stopped", extra={"pid": os.getpid()})
    return 0


# How long a gateway process waits at start for the gRPC workers to serve (they migrate and
# open their pools first).
GATEWAY_START_SECONDS = 120.0


def grpc_target(addr: str) -> str:
    """Where a gateway on this host reaches the gRPC port bound at addr."""
    host, port = split_addr(addr)
    if port == 0:
        raise ValueError("gateway processes need a fixed gRPC port (NOTES_GRPC_ADDR)")
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _serve(settings: Settings, reuse_port: bool, told_to_stop: bool = False) -> int:
    from .events import background as events_background
    from .gateway.app import create_app
    from .rpc import convert
    from .rpc.server import create_server

    settings = fit_open_files(settings)
    metrics_server = None
    if settings.metrics_addr and not settings.metrics_port:  # else the parent serves them
        metrics_server = metrics.MetricsServer(settings.metrics_addr)
        metrics_server.start()
        settings.metrics_port = metrics_server.port

    engine = db.open_database(
        settings.database_url,
        pool_size=settings.pool_size(),
        statement_timeout_ms=settings.db_statement_timeout_ms,
    )
    migrations.migrate(engine)
    db.warm(settings.pool_size())  # descriptors the database needs, taken before any flood
    for memo in (note_store.DECODED, convert.RENDERED, convert.LISTED):
        memo.resize(settings.note_cache)
    running = create_server(settings, reuse_port=reuse_port)
    running.server.start()
    background = events_background.start(settings)  # purging; publishing to NATS if set
    deliverer = None
    if settings.webhook_delivery:
        from .delivery import Deliverer

        deliverer = Deliverer(settings).start()
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
        # "serving" is said once the gateway's own connection to gRPC is up (at once: the
        # server above already serves), so a flood on the gRPC port cannot find it without one.
        app = create_app(
            f"127.0.0.1:{running.port}", settings, serving, wait_for_service=GATEWAY_START_SECONDS
        )
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
        _next_signal(signals, None if told_to_stop else settings.shutdown_delay_seconds)
    stopped = running.stop(settings.grace_seconds)
    log.info("draining", extra={"grace_seconds": settings.grace_seconds})
    if deliverer is not None:
        deliverer.stop(settings.grace_seconds)  # alongside the drain: the same grace period
    stopped.wait()
    background.stop()
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


def serve_workers(settings: Settings, workers: int, gateways: int = 0) -> int:
    """Forks the workers before any gRPC object or database connection exists; each binds the
    same ports with SO_REUSEPORT and has its own pool. The parent forwards SIGTERM/SIGINT and
    serves /metrics for them all (prometheus-client's multiprocess mode).

    With gateways > 0 the HTTP gateway runs in that many processes of its own (sharing the
    HTTP port), each calling the workers' gRPC port, and the workers serve gRPC only: the
    gateway's event loop no longer shares a GIL with the service's threads. A signal turns
    both surfaces' health at once; the workers stop only after every gateway has drained
    (the parent then signals them again), so that no in-flight HTTP request loses its RPC."""
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
    if gateways:
        grpc_target(settings.grpc_addr)  # a fixed port, checked before anything is forked
    worker_settings = dataclasses.replace(settings, http_enabled=False) if gateways else settings

    def fork(run) -> int:
        pid = os.fork()
        if pid == 0:
            if metrics_server is not None:
                metrics_server.forget()
            try:
                code = run()
            except BaseException:  # noqa: BLE001
                code = 1
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        return pid

    children = [
        fork(lambda: serve(worker_settings, reuse_port=True, told_to_stop=bool(gateways)))
        for _ in range(workers)
    ]
    http_children = [
        fork(lambda: serve_gateway(settings, reuse_port=True)) for _ in range(gateways)
    ]
    grpc_children = list(children)
    children += http_children
    running = set(children)
    released = [not http_children]  # whether the workers were told the gateways are done

    def send(pids, signum) -> None:
        for child in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signum)

    def release_when_drained() -> None:
        if not released[0] and not running.intersection(http_children):
            released[0] = True
            send(running.intersection(grpc_children), signal.SIGTERM)

    def forward(signum, frame) -> None:
        if released[0]:
            send(running, signum)
            return
        # The workers hear the first signal (health turns), and the next once the gateways
        # have drained; the gateways hear every one.
        first = not signalled[0]
        signalled[0] = True
        send(running if first else running.intersection(http_children), signum)
        release_when_drained()

    signalled = [False]
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    if metrics_server is not None:
        metrics_server.start()
    status = 0
    try:
        while running:  # in the order they exit, so a dead worker's gauges go at once
            child, code = os.waitpid(-1, 0)
            if child not in running:
                continue
            running.discard(child)
            status = status or os.waitstatus_to_exitcode(code)
            if signalled[0]:
                release_when_drained()
            if metrics_server is not None:
                metrics.worker_exited(child)
    finally:
        if metrics_server is not None:
            metrics_server.close()
            metrics.remove_dir(metrics_dir)
    return status
