"""The client side of one store script call: redis-py's asyncio client against the lean
script connection the store uses for standalone Redis (router/store/resp.py).

Run `python -m bench.micro_redis [--url redis://127.0.0.1:6379/0]`. Each figure is the
median of 5 rounds of 5,000 sequential EVALSHA calls of an admit-sized command (8 keys, 30
arguments), as this process's CPU time and wall time per call; Redis's own time is in the
wall figure only.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Awaitable, Callable

import uvloop

from router.store.redis_url import connect
from router.store.resp import ScriptConnection

CALLS = 5_000
ROUNDS = 5
SCRIPT = "return {1, 2, 3, KEYS[1], ARGV[1]}"
KEYS = [f"bench-micro:{{team}}:k{i}" for i in range(8)]
ARGS = [str(i) for i in range(30)]


async def _measure(call: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    """Median (cpu µs, wall µs) per call."""
    await call()
    cpu, wall = [], []
    for _ in range(ROUNDS):
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for _ in range(CALLS):
            await call()
        cpu.append((time.process_time() - cpu0) / CALLS * 1e6)
        wall.append((time.perf_counter() - wall0) / CALLS * 1e6)
    return statistics.median(cpu), statistics.median(wall)


async def _main(url: str) -> None:
    connection = connect(url, 2.0)
    client = connection.client
    lane = connection.scripts or ScriptConnection("127.0.0.1", 6379, timeout_s=2.0)
    sha = await client.script_load(SCRIPT)

    async def via_client() -> object:
        return await client.execute_command("EVALSHA", sha, len(KEYS), *KEYS, *ARGS)

    async def via_lane() -> object:
        return await lane.call("EVALSHA", sha, str(len(KEYS)), *KEYS, *ARGS)

    results = {
        "redis-py client": await _measure(via_client),
        "script connection": await _measure(via_lane),
    }
    for name, (cpu, wall) in results.items():
        print(f"{name:<18} {cpu:7.1f} µs CPU/call  {wall:7.1f} µs wall/call")
    ratio = results["redis-py client"][0] / results["script connection"][0]
    print(f"CPU ratio client/connection: {ratio:.2f}x")
    await lane.aclose()
    await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    uvloop.run(_main(parser.parse_args().url))


if __name__ == "__main__":
    main()
