"""`notes serve --gateway-workers N`: the HTTP gateway in processes of its own, beside the gRPC
workers, turning health with them at a signal and drained before they stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from .conftest import BIN, JWT_SECRET, make_database, records

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Log:
    """The service's stderr, read as it comes; wait() blocks until a condition holds."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self.changed = threading.Condition()
        threading.Thread(target=self._read, args=(process,), daemon=True).start()

    def _read(self, process: subprocess.Popen) -> None:
        for line in process.stderr:
            with self.changed:
                self.lines.append(line)
                self.changed.notify_all()
        with self.changed:
            self.lines.append("")  # the end
            self.changed.notify_all()

    def wait(self, done, timeout: float = 30) -> list[dict]:
        with self.changed:
            assert self.changed.wait_for(lambda: done(self.events()), timeout), self.lines[-20:]
            return self.events()

    def events(self) -> list[dict]:
        return [r for r in records(self.lines) if r.get("logger") == "notes"]


def serve(tmp_path, url: str, grpc_port: int, http_port: int, *args: str, **env: str):
    """`notes serve ARGS` on these ports (NOTES_GATEWAY_WORKERS left to ARGS), and its log."""
    environment = {k: v for k, v in os.environ.items() if k != "NOTES_GATEWAY_WORKERS"}
    environment.update(
        NOTES_DATABASE_URL=url,
        NOTES_JWT_SECRET=JWT_SECRET,
        NOTES_GRPC_ADDR=f"127.0.0.1:{grpc_port}",
        NOTES_HTTP_ADDR=f"127.0.0.1:{http_port}",
        NOTES_METRICS_ADDR="",
        PYTHONUNBUFFERED="1",
        **env,
    )
    process = subprocess.Popen(
        [str(BIN / "notes"), "serve", *args],
        env=environment,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    return process, Log(process)


def test_gateway_workers_serve_http_apart_and_drain_before_the_grpc_workers_stop(tmp_path):
    url, drop = make_database("sqlite", tmp_path)
    grpc_port, http_port = free_port(), free_port()
    process, log = serve(
        tmp_path,
        url,
        grpc_port,
        http_port,
        "--gateway-workers",
        "2",
        NOTES_SHUTDOWN_DELAY_SECONDS="600",
    )
    try:
        started = log.wait(lambda ev: sum(e["event"] == "serving" for e in ev) == 3)
        gateways = {e["pid"] for e in started if e["event"] == "serving" and e.get("gateway")}
        workers = {e["pid"] for e in started if e["event"] == "serving" and "grpc_port" in e}
        assert len(gateways) == 2 and len(workers) == 1
        assert process.pid not in gateways | workers

        with httpx.Client(base_url=f"http://127.0.0.1:{http_port}", timeout=10) as http:
            assert http.get("/healthz").status_code == 200
            # The credential is checked by the service: the answer crossed the gRPC port.
            rejected = http.get("/api/v1/notes/note_x", headers={"Authorization": "Bearer sk_x"})
            assert rejected.status_code == 401, rejected.text

            process.send_signal(signal.SIGTERM)
            log.wait(lambda ev: sum(e["event"] == "not_serving" for e in ev) == 3)
            with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as ch:
                answer = health_pb2_grpc.HealthStub(ch).Check(
                    health_pb2.HealthCheckRequest(), timeout=5
                )
            assert answer.status == health_pb2.HealthCheckResponse.NOT_SERVING
            assert http.get("/healthz").status_code == 503
            # Still answered during the delay, through the gRPC workers.
            rejected = http.get("/api/v1/notes/note_x", headers={"Authorization": "Bearer sk_x"})
            assert rejected.status_code == 401, rejected.text

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        events = log.wait(lambda ev: sum(e["event"] == "stopped" for e in ev) == 3)
        order = [(e["event"], e.get("pid")) for e in events if e["event"] != "open_files"]
        last_gateway = max(order.index(("stopped", pid)) for pid in gateways)
        draining = next(i for i, (event, _) in enumerate(order) if event == "draining")
        assert last_gateway < draining, order
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        drop()


def test_gateway_workers_need_a_fixed_grpc_port(tmp_path):
    url, drop = make_database("sqlite", tmp_path)
    try:
        out = subprocess.run(
            [str(BIN / "notes"), "serve", "--gateway-workers", "1"],
            env={
                **os.environ,
                "NOTES_DATABASE_URL": url,
                "NOTES_JWT_SECRET": JWT_SECRET,
                "NOTES_GRPC_ADDR": "127.0.0.1:0",
                "NOTES_HTTP_ADDR": "127.0.0.1:0",
                "NOTES_METRICS_ADDR": "",
            },
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        drop()
    assert out.returncode != 0
    assert "fixed gRPC port" in out.stderr, out.stderr[-2000:]
    assert '"event": "serving"' not in out.stderr


def test_a_single_worker_gets_a_gateway_process_by_default_on_two_or_more_cpus(tmp_path):
    if (os.cpu_count() or 1) < 2:
        pytest.skip("one CPU: the gateway stays in the worker")
    url, drop = make_database("sqlite", tmp_path)
    http_port = free_port()
    process, log = serve(tmp_path, url, free_port(), http_port)
    try:
        started = log.wait(lambda ev: sum(e["event"] == "serving" for e in ev) == 2)
        serving = [e for e in started if e["event"] == "serving"]
        assert sorted(bool(e.get("gateway")) for e in serving) == [False, True]
        with httpx.Client(base_url=f"http://127.0.0.1:{http_port}", timeout=10) as http:
            rejected = http.get("/api/v1/notes/note_x", headers={"Authorization": "Bearer sk_x"})
            assert rejected.status_code == 401, rejected.text
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        drop()
