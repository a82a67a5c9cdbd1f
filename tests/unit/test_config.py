"""Config loading: env expansion, validation errors that name file and key, path resolution."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from router.config import ConfigError, expand_env, load_config

REPO = Path(__file__).resolve().parents[2]

MINIMAL = """
backends:
  mini:
    base_url: ${MINI_URL:-http://localhost:9/v1}
    api_key: ${MINI_KEY}
    model: m
    capabilities: {context_window: 1000, max_output_tokens: 100}
"""


def test_env_references_expand_with_defaults():
    tree = {"a": "${X}", "b": ["${Y:-dflt}", "pre-${X}-post"], "c": 3, "d": "${UNSET}"}
    assert expand_env(tree, {"X": "x"}) == {"a": "x", "b": ["dflt", "pre-x-post"], "c": 3, "d": ""}


def test_empty_env_value_falls_back_to_default():
    assert expand_env("${X:-d}", {"X": ""}) == "d"


def test_minimal_config_loads_with_defaults_and_blank_key_is_none(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(MINIMAL)
    config = load_config(path, env={})
    mini = config.backends["mini"]
    assert mini.base_url == "http://localhost:9/v1"
    assert mini.api_key is None
    assert config.store.url == "memory://"
    assert config.policy == (tmp_path / "../policies/default.yaml").resolve()
    assert config.model_names() == ["auto", "mini"]


def test_default_config_has_mini_half_of_full(monkeypatch):
    config = load_config(REPO / "config" / "router.yaml", env={"FULL_API_KEY": "sk-x"})
    caps = config.capabilities()
    assert caps["mini"].context_window * 2 == caps["full"].context_window
    assert not caps["mini"].image_generation and not caps["mini"].realtime_audio
    assert config.backends["full"].api_key is not None
    assert config.backends["full"].api_key.get_secret_value() == "sk-x"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("backends: {}", "backends: Value error, at least one backend is required"),
        (
            MINIMAL.replace("model: m", "model: m\n    colour: blue"),
            "backends.mini.colour: Extra inputs are not permitted",
        ),
        (MINIMAL + "server: {port: -1}", "server.port: Input should be greater than or equal"),
        ("backends: [", "not valid YAML"),
        ("- 1\n- 2", "(top level): expected a mapping"),
    ],
)
def test_errors_name_the_file_and_key_path(tmp_path, text, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(path) in str(info.value)
    assert expected in str(info.value)


def test_cli_reports_bad_config_without_traceback(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("backends: {}")
    result = subprocess.run(
        [sys.executable, "-m", "router", "serve", "--config", str(path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"{path}: backends:" in result.stderr


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "nope.yaml")
