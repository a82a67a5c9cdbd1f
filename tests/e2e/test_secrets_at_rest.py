"""No secret at rest: after keys are minted, used, rotated and misused through a real router
(debug logging on), neither Redis nor the router's log holds a client key, the admin key or
an upstream API key in plain text."""

from __future__ import annotations

from typing import Any

import httpx
import openai

from tests.e2e.support import ADMIN_HEADERS, PROMPT, Admin, replicas
from tests.router_process import ADMIN_KEY, CLIENT_KEY

MINI_SECRET = "sk-upstream-mini-5f0c2d9e8b7a6140"
FULL_SECRET = "sk-upstream-full-93ab17c4e2d05f68"
IMAGE = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "what is in this picture"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        ],
    }
]


def _secret_upstreams(cfg: dict[str, Any]) -> None:
    cfg["server"]["log_level"] = "debug"
    cfg["backends"]["mini"]["api_key"] = MINI_SECRET
    cfg["backends"]["full"]["api_key"] = FULL_SECRET


def _use(base_url: str, key: str) -> None:
    client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=20)
    assert client.chat.completions.create(model="auto", messages=PROMPT).choices
    assert list(client.chat.completions.create(model="auto", messages=PROMPT, stream=True))
    assert client.chat.completions.create(model="auto", messages=IMAGE).choices


def test_no_plaintext_key_in_redis_or_logs(tmp_path, fakes):
    mini, full = fakes
    with replicas(tmp_path, mini, full, 2, configure=_secret_upstreams) as (routers, peek):
        one, two = routers
        admin = Admin(one)
        alice = admin.create_key(
            "secrets", "alice", budgets=[{"period": "day", "limit_usd": "1"}], limits={"rpm": 1000}
        )
        bob = admin.create_key("secrets", "bob")
        rotated = admin.http.post(f"/admin/keys/{bob['id']}/rotate").json()
        client_keys = [CLIENT_KEY, alice["key"], bob["key"], rotated["key"]]

        for router, key in (
            (one, alice["key"]),
            (two, alice["key"]),
            (two, rotated["key"]),
            (one, CLIENT_KEY),
        ):
            _use(router.base_url, key)
        old = httpx.post(
            f"{two.base_url}/chat/completions",
            json={"model": "auto"},
            headers={"authorization": f"Bearer {bob['key']}"},
        )
        assert old.status_code == 401, "a rotated-out key stops working"
        as_admin = httpx.get(
            f"{one.url}/admin/keys", headers={"authorization": f"Bearer {alice['key']}"}
        )
        assert as_admin.status_code == 403
        wrong = httpx.get(
            f"{two.url}/admin/keys", headers={"authorization": f"Bearer {ADMIN_KEY}x"}
        )
        assert wrong.status_code == 401
        mini.fail(500)
        failed = httpx.post(
            f"{one.base_url}/chat/completions",
            json={"model": "mini", "messages": PROMPT},
            headers={"authorization": f"Bearer {alice['key']}"},
        )
        assert failed.status_code == 502
        listed = httpx.get(f"{one.url}/admin/keys", headers=ADMIN_HEADERS).text
        assert alice["id"] in listed

        dump = peek.dump()
        for router in routers:
            router.stop()
        logs = "\n".join(router.logs() for router in routers)

    assert alice["id"] in dump and "ledger" in dump, "the dump reads what the router stored"
    assert len(logs.splitlines()) > 10, "debug logging was on"
    secrets = {f"client key {i}": key for i, key in enumerate(client_keys)}
    secrets |= {
        f"client key {i} (body)": key.removeprefix("sk-rt-") for i, key in enumerate(client_keys)
    }
    secrets |= {
        "admin key": ADMIN_KEY,
        "mini upstream key": MINI_SECRET,
        "full upstream key": FULL_SECRET,
    }
    leaks = [
        f"{name} in {where}"
        for name, secret in secrets.items()
        for where, text in (("redis", dump), ("logs", logs))
        if secret in text
    ]
    assert not leaks, leaks
