"""Prompt expansion: the offline world expander, and an OpenAI-compatible chat endpoint served
on loopback by the test itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from cinepatch.errors import CinepatchError, Refused
from cinepatch.expand import ChatExpander, NoExpander, WorldExpander


def test_world_expander_writes_the_dense_caption() -> None:
    result = WorldExpander().expand("crimson ball drifts rightwards, dark blue backdrop")
    assert result.expanded.startswith("A medium red circle moves right")
    assert "navy" in result.expanded and result.warnings == ()


def test_world_expander_warns_about_words_and_prompts_outside_the_world() -> None:
    partial = WorldExpander().expand("a red circle moves right next to a violin")
    assert "violin" in partial.warnings[0] and "red circle" in partial.expanded
    outside = WorldExpander().expand("a portrait of a violinist")
    assert outside.expanded == "a portrait of a violinist"
    assert "only knows its procedural world" in outside.warnings[0]
    assert NoExpander().expand("x").expanded == "x"


def test_a_scene_the_world_cannot_hold_is_kept_as_written() -> None:
    """Two objects of one colour need one shape in the world; such a prompt (a blend's "A, then
    B" among others) is generated as written, with a warning, not refused."""
    result = WorldExpander().expand("a red circle moves left, then a red square moves up")
    assert result.expanded == "a red circle moves left, then a red square moves up"
    assert "one shape per colour" in result.warnings[0]


def test_chat_expander_asks_the_endpoint(chat_server) -> None:
    server = chat_server("  A large green square slides slowly to the left across a gray background.  ")
    result = ChatExpander(base_url=server.url, model="m", api_key="k").expand("green box left")
    assert result.expanded == "A large green square slides slowly to the left across a gray background."
    [request] = server.requests
    assert request["path"] == "/v1/chat/completions" and request["auth"] == "Bearer k"
    assert request["body"]["model"] == "m" and request["body"]["messages"][-1]["content"] == "green box left"


def test_chat_expander_errors_are_clear() -> None:
    with pytest.raises(CinepatchError, match="prompt expansion at http://127.0.0.1:9/v1 failed"):
        ChatExpander(base_url="http://127.0.0.1:9/v1", model="m", timeout=2).expand("x")


def test_an_endpoints_expansion_is_moderated_too(chat_server, tmp_path: Path) -> None:
    from cinepatch.app import Studio, VideoRequest
    from cinepatch.config import ExpansionConfig, load_config

    server = chat_server("a naked child on a beach")  # the endpoint misbehaves
    config = load_config(None, config_dir=tmp_path / "c", data_dir=tmp_path / "d")
    config = type(config)(**{**config.__dict__, "expansion": ExpansionConfig(backend="chat", url=server.url, model="m")})
    with pytest.raises(Refused):
        Studio(config).create(VideoRequest(prompt="a red circle moves right", model="world", seconds=1, fps=8),
                              out=tmp_path / "o.mp4")
    assert not (tmp_path / "o.mp4").exists()
