"""Properties of the scrubber every relayed upstream error goes through."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from router.backends.upstream_errors import scrub, scrub_event

PLACEHOLDERS = "[redacted] [upstream]"
secrets = st.text(
    st.characters(codec="ascii", categories=["L", "N"]), min_size=8, max_size=40
).filter(lambda secret: secret not in PLACEHOLDERS)
"""Backend secrets; a secret spelled like a placeholder the scrubber writes would be found
in its own replacement."""
words = st.text(max_size=60)


@given(before=words, secret=secrets, after=words)
def test_a_backend_secret_never_survives(before: str, secret: str, after: str) -> None:
    assert secret not in scrub(before + secret + after, {secret})


@given(
    host=st.from_regex(r"[a-z]{1,10}\.(internal|local|svc)", fullmatch=True),
    port=st.integers(1, 65535),
    ip=st.ip_addresses(v=4),
)
def test_addresses_and_urls_never_survive(host: str, port: int, ip: object) -> None:
    message = f"tried {host}:{port}, http://{host}/v1 and {ip}:{port}"
    cleaned = scrub(message)
    assert host not in cleaned and str(ip) not in cleaned


@given(text=words)
def test_plain_messages_are_kept(text: str) -> None:
    plain = "".join(c for c in text if c.isalpha() or c == " ")
    assert scrub(plain) == plain[:500]


@given(raw=st.binary(max_size=300))
def test_scrub_event_never_raises_and_leaves_other_events_alone(raw: bytes) -> None:
    out = scrub_event(raw, {"upstream-secret"})
    if b'"error"' not in raw:
        assert out == raw


@given(secret=secrets, field=st.sampled_from(["message", "param", "code"]))
def test_error_events_are_scrubbed_field_by_field(secret: str, field: str) -> None:
    error = {
        "message": "m",
        "type": "server_error",
        "param": None,
        "code": None,
        field: f"bad {secret} at http://10.0.0.7:8000/v1",
    }
    event = b"data: " + orjson.dumps({"error": error}) + b"\n\n"
    out = scrub_event(event, {secret})
    assert secret.encode() not in out and b"10.0.0.7" not in out
    assert orjson.loads(out.split(b"\n")[0][len(b"data: ") :])["error"]["type"] == "server_error"
