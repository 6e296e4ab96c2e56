"""The gateway's floors for `make bench`: bare Starlette under uvicorn, in a process of its own.

- GET /transcoding: one grpc.aio call to the service's grpc.health.v1 Health/Check, then a
  small JSON. No gateway hop can go faster on this stack: it is the transcoding floor every
  gateway row is compared with.
- GET /bare: a small JSON, no RPC: what Starlette and uvicorn alone cost.

    python scripts/floor_app.py --port 8081 --target 127.0.0.1:50051 --http httptools

--http and --loop are uvicorn's own choices; by default the gateway's (NOTES_HTTP_PARSER,
NOTES_HTTP_LOOP), so that the floor runs on the same HTTP stack as the rows compared with it.
"""

from __future__ import annotations

import argparse
import contextlib

import grpc
import uvicorn
from grpc_health.v1 import health_pb2, health_pb2_grpc
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from server.config import Settings

CHECK = health_pb2.HealthCheckRequest(service="")


def create_app(target: str) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        channel = grpc.aio.insecure_channel(target)
        app.state.health = health_pb2_grpc.HealthStub(channel)
        try:
            yield
        finally:
            await channel.close()

    async def transcoding(request: Request) -> JSONResponse:
        reply = await request.app.state.health.Check(CHECK, timeout=10)
        name = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        return JSONResponse({"status": name})

    async def bare(request: Request) -> JSONResponse:
        return JSONResponse({"status": "SERVING"})

    return Starlette(
        routes=[
            Route("/transcoding", transcoding, methods=["GET"]),
            Route("/bare", bare, methods=["GET"]),
        ],
        lifespan=lifespan,
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--target", required=True, help="host:port of the notes gRPC service")
    p.add_argument("--http", default="", choices=("", "h11", "httptools"))
    p.add_argument("--loop", default="", choices=("", "asyncio", "uvloop"))
    args = p.parse_args()
    settings = Settings()
    args.http = args.http or settings.http_parser
    args.loop = args.loop or settings.http_loop
    uvicorn.run(
        create_app(args.target),
        host="127.0.0.1",
        port=args.port,
        http=args.http,
        loop=args.loop,
        log_level="warning",
        access_log=False,
        lifespan="on",
    )


if __name__ == "__main__":
    main()
