"""What `router mini up` prints once the router answers: lines to paste into another shell,
with the real URL and keys, so the first request works without editing anything.

The environment variables are the ones the tools already read: the OpenAI SDKs take
OPENAI_BASE_URL and OPENAI_API_KEY, and `router keys|prices|usage ...` take ROUTER_URL and
ROUTER_ADMIN_KEY. A key the user set themselves is referred to by name, never echoed.
Every indented line is shell, in order, so the block can be pasted (or run) whole.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

QUESTION = "What is the capital of France?"
"""Asked at temperature 0: a 135M model answers it reliably only when held to its likeliest
words."""


@dataclass(frozen=True, slots=True)
class Access:
    """Where the router listens and how to authenticate. A key is None when the user set it
    in the environment (the snippet then names the variable instead)."""

    router_url: str
    client_key: str | None
    admin_key: str | None
    python: str = "python3"
    """An interpreter with the openai package: the router's own, when it has it."""
    router_command: str = "router"

    @property
    def base_url(self) -> str:
        return f"{self.router_url}/v1"


def _value(generated: str | None, variable: str) -> str:
    return shlex.quote(generated) if generated is not None else f'"${variable}"'


def exports(access: Access) -> list[str]:
    """`export NAME=VALUE` lines, one variable each."""
    return [
        f"export OPENAI_BASE_URL={access.base_url}",
        f"export OPENAI_API_KEY={_value(access.client_key, 'ROUTER_API_KEY')}",
        f"export ROUTER_URL={access.router_url}",
        f"export ROUTER_ADMIN_KEY={_value(access.admin_key, 'ROUTER_ADMIN_KEY')}",
    ]


def _python_line(python: str) -> str:
    code = (
        "from openai import OpenAI; "
        'r = OpenAI().chat.completions.with_raw_response.create(model="auto", temperature=0, '
        f'messages=[{{"role": "user", "content": "{QUESTION}"}}]); '
        'print(r.headers["x-router-backend"], r.headers["x-router-cost-usd"], "USD"); '
        "print(r.parse().choices[0].message.content)"
    )
    return f"{shlex.quote(python)} -c {shlex.quote(code)}"


def _curl_lines() -> list[str]:
    body = (
        '{"model": "auto", "temperature": 0, '
        '"messages": [{"role": "user", "content": "' + QUESTION + '"}]}'
    )
    return [
        'curl -si "$OPENAI_BASE_URL/chat/completions" \\',
        '  -H "authorization: Bearer $OPENAI_API_KEY" -H "content-type: application/json" \\',
        f"  -d {shlex.quote(body)}",
    ]


def snippet(access: Access) -> str:
    """The block printed under "Ready": exports, then the SDK, curl and the admin CLI."""

    def shell(*lines: str) -> list[str]:
        return [f"  {line}" for line in lines]

    yours = [
        name
        for name, key in (
            ("ROUTER_API_KEY", access.client_key),
            ("ROUTER_ADMIN_KEY", access.admin_key),
        )
        if key is None
    ]
    return "\n".join(
        [
            "",
            "Ready. In another shell"
            + (f" (with your own {' and '.join(yours)} set there too)" if yours else "")
            + ", paste:",
            *shell(*exports(access)),
            "Ask through the router with the OpenAI SDK (it reads the two OPENAI_ variables):",
            *shell(_python_line(access.python)),
            "or with curl (the x-router-* headers say where it went and what it cost):",
            *shell(*_curl_lines()),
            "and see the spend per backend with the admin CLI:",
            *shell(f"{shlex.quote(access.router_command)} usage --group-by backend"),
            "",
        ]
    )
