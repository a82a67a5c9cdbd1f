"""The floor: a bare FastAPI pass-through with two Redis Lua round trips per request.

Our throughput goals are stated against this shape (uvloop, httptools, aiohttp to the
upstream, orjson, two EVALSHAs and nothing else), so the benchmark measures it in the same
run, on the same machine, instead of quoting a figure measured elsewhere. No auth, no
policy, no accounting: whatever the router costs beyond this is the router's own work.

Run: `python -m bench.floor_app --port P --upstream URL --redis-url URL --key-prefix PREFIX`.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
import orjson
import redis.asyncio as aioredis
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse

# One tiny script, one key: the cheapest round trip that still runs Lua on the server.
COUNT_LUA = "return redis.call('HINCRBY', KEYS[1], ARGV[1], 1)"
MAX_CONNECTIONS = 256  # the router's default `max_connections` per backend


@dataclass(slots=True)
class Floor:
    """What every request shares: created once at start-up, closed at shutdown."""

    upstream_url: str
    redis: aioredis.Redis
    session: aiohttp.ClientSession
    key: str
    sha: str

    async def count(self, field: str) -> None:
        """One Redis round trip running the Lua script (stands in for reserve / settle)."""
        await self.redis.evalsha(self.sha, 1, self.key, field)


def _content_type(resp: aiohttp.ClientResponse) -> str:
    return resp.headers.get("Content-Type", "application/json")


async def _relay(floor: Floor, resp: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    """The upstream's SSE body chunk by chunk, then the second round trip."""
    try:
        async for chunk in resp.content.iter_any():
            yield chunk
    finally:
        resp.release()
    await floor.count("after")


async def chat(floor: Floor, request: Request) -> Response:
    """Parse, count, forward, count, answer with the upstream's status and content type."""
    doc = orjson.loads(await request.body())
    await floor.count("before")
    resp = await floor.session.post(
        floor.upstream_url, data=orjson.dumps(doc), headers={"Content-Type": "application/json"}
    )
    if isinstance(doc, dict) and doc.get("stream") is True:
        return StreamingResponse(
            _relay(floor, resp), status_code=resp.status, media_type=_content_type(resp)
        )
    async with resp:
        body = await resp.read()
    await floor.count("after")
    return Response(body, status_code=resp.status, media_type=_content_type(resp))


def create_app(upstream: str, redis_url: str, key_prefix: str) -> FastAPI:
    """The app; Redis client, script and HTTP session live for the app's lifetime."""
    state: dict[str, Floor] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = aioredis.Redis.from_url(redis_url)
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS, keepalive_timeout=30)
        )
        try:
            sha = str(await client.script_load(COUNT_LUA))
            url = upstream.rstrip("/") + "/chat/completions"
            state["floor"] = Floor(url, client, session, f"{key_prefix}:requests", sha)
            yield
        finally:
            await session.close()
            await client.aclose()

    app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        return await chat(state["floor"], request)

    return app


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.floor_app", description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--upstream", required=True, help="base URL, e.g. http://127.0.0.1:8001/v1")
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--key-prefix", required=True, help="Redis keys go under this prefix")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """One worker, uvloop + httptools, no access log: the same server settings as the router."""
    args = parse_args(argv)
    uvicorn.run(
        create_app(args.upstream, args.redis_url, args.key_prefix),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        workers=1,
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
