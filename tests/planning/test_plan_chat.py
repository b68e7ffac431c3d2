"""The chat planner against a real chat-completions server on loopback (conftest.chat_server)."""

from __future__ import annotations

import json

import numpy as np

from cinepatch.planning import ChatPlanner, plan_prompt

CANVAS = {"width": 64, "height": 64, "fps": 8, "frames": 17}
PLAN = {
    "version": 1,
    "canvas": {"width": 64, "height": 64, "fps": 8, "frames": 17},
    "background": {"colour": "sky", "texture": None},
    "camera": {"pan": None},
    "objects": [
        {"phrase": "large green square", "depth": 0,
         "keyframes": [{"frame": 0, "box": [0.6, 0.3, 0.9, 0.6]}, {"frame": 16, "box": [0.1, 0.3, 0.4, 0.6]}]}
    ],
    "occluders": [],
}


def test_the_endpoints_plan_is_read_validated_and_used(chat_server) -> None:
    server = chat_server("Here is the plan:\n```json\n" + json.dumps(PLAN) + "\n```")
    result = ChatPlanner(base_url=server.url, model="planner-1", api_key="k").plan(
        "a big green box slides left over the sky", **CANVAS, seed=0
    )
    assert result.planner == "chat" and result.warnings == ()
    assert result.plan is not None and result.plan.objects[0].phrase == "large green square"
    assert np.allclose(result.plan.objects[0].track[:, 0], np.linspace(0.6, 0.1, 17))
    [request] = server.requests
    assert request["path"] == "/v1/chat/completions" and request["auth"] == "Bearer k"
    body = request["body"]
    assert body["model"] == "planner-1" and body["temperature"] == 0
    assert "JSON" in body["messages"][0]["content"] and "keyframes" in body["messages"][0]["content"]
    assert '"frames": 17' in body["messages"][1]["content"] and "green box" in body["messages"][1]["content"]


def test_a_plan_on_another_canvas_is_fitted_to_the_requested_one(chat_server) -> None:
    other = json.loads(json.dumps(PLAN))
    other["canvas"] = {"width": 128, "height": 96, "fps": 4, "frames": 5}
    other["objects"][0]["keyframes"][1]["frame"] = 4
    server = chat_server(json.dumps(other))
    result = ChatPlanner(base_url=server.url, model="m").plan("green box", **CANVAS, seed=0)
    assert result.planner == "chat" and result.plan is not None
    assert result.plan.canvas.width == 64 and result.plan.canvas.frames == 17 and result.plan.canvas.fps == 8
    assert result.plan.objects[0].track[0, 0] == 0.6 and result.plan.objects[0].track[-1, 0] == 0.1


def test_an_invalid_plan_falls_back_to_the_world_planner_naming_the_field(chat_server) -> None:
    bad = json.loads(json.dumps(PLAN))
    bad["objects"][0]["keyframes"][1]["box"] = [0.1, 0.3, 2.0, 0.6]
    server = chat_server(json.dumps(bad))
    prompt = "a red circle moves right"
    result = ChatPlanner(base_url=server.url, model="m").plan(prompt, **CANVAS, seed=3)
    assert result.planner == "world" and result.plan == plan_prompt(prompt, **CANVAS, seed=3)
    assert "objects[0].keyframes[1].box" in result.warnings[0] and "world planner planned instead" in result.warnings[0]


def test_a_phrase_outside_the_world_falls_back_too(chat_server) -> None:
    outside = json.loads(json.dumps(PLAN))
    outside["objects"][0]["phrase"] = "a violin"
    server = chat_server(json.dumps(outside))
    result = ChatPlanner(base_url=server.url, model="m").plan("a red circle", **CANVAS, seed=0)
    assert result.planner == "world" and "objects[0].phrase='a violin'" in result.warnings[0]


def test_prose_instead_of_json_falls_back_too(chat_server) -> None:
    server = chat_server("I would put a circle in the middle.")
    result = ChatPlanner(base_url=server.url, model="m").plan("a red circle", **CANVAS, seed=0)
    assert result.planner == "world" and result.plan is not None and "no JSON object" in result.warnings[0]


def test_an_unreachable_endpoint_and_an_unplannable_prompt_say_both() -> None:
    result = ChatPlanner(base_url="http://127.0.0.1:9/v1", model="m", timeout=2).plan(
        "a portrait of a violinist", **CANVAS, seed=0
    )
    assert result.plan is None and len(result.warnings) == 2
    assert "127.0.0.1:9" in result.warnings[0] and "cannot plan this prompt" in result.warnings[1]
