"""The chat planner: an OpenAI-compatible ``/chat/completions`` endpoint writes the plan.

It uses the endpoint settings of prompt expansion (``expansion:`` in the config), asks for a
plan in the schema of :mod:`cinepatch.planning.schema` on the requested canvas, and reads the
reply with the same strict reader as a user's plan file. Any failure — the endpoint is down, the
reply is not JSON, the plan is invalid — falls back to the world planner, with a warning that
names what went wrong, so a request never fails because the planner did. Each phrase must name
one object of the world (the vocabulary the models that read plans know).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from cinepatch.errors import CinepatchError
from cinepatch.expand import chat_completion
from cinepatch.planning.schema import MAX_OBJECTS, ScenePlan
from cinepatch.planning.world import PlanResult, WorldPlanner, look_of

__all__ = ["ChatPlanner", "SYSTEM_PROMPT", "parse_reply"]

SYSTEM_PROMPT = f"""You plan videos for a text-to-video model. Reply with one JSON object only, no prose:
{{"version": 1,
 "canvas": {{"width": W, "height": H, "fps": F, "frames": T}},   (copy the canvas you are given)
 "background": {{"colour": one of black, gray, navy, forest, brown, sky; "texture": null, "striped" or "checkered"}},
 "camera": {{"pan": null, "left" or "right"}},
 "objects": [  (1 to {MAX_OBJECTS})
   {{"phrase": "SIZE COLOUR SHAPE", e.g. "small red circle" (sizes small, medium, large; colours red, orange,
      yellow, green, blue, purple, pink, white; shapes circle, square, triangle),
    "depth": 0 for the nearest object, larger for farther ones,
    "keyframes": [{{"frame": 0, "box": [x0, y0, x1, y1]}}, ..., {{"frame": T-1, "box": [...]}}]}}],
 "occluders": []  or [{{"kind": "pillar", "box": [x0, 0, x1, 1]}}] for a pillar}}
Boxes are normalised to the canvas: 0..1, x to the right, y down. A box's width is the object's size
as a fraction of the canvas width (small 0.12, medium 0.20, large 0.30 of the shorter side). Keyframes
are in increasing frame order and are interpolated linearly; give as many as the motion needs (a
bounce needs one per change of direction). Keep objects inside the canvas unless they enter or
leave, and apart from one another."""

_FENCE = re.compile(r"```(?:json|yaml)?\s*(.*?)```", re.DOTALL)


def parse_reply(text: str) -> ScenePlan:
    """The plan in a model's reply: a JSON object, bare or in a code fence."""
    match = _FENCE.search(text)
    body = match.group(1) if match else text
    start, end = body.find("{"), body.rfind("}")
    if start < 0 or end < start:
        raise CinepatchError("the reply holds no JSON object")
    try:
        data = json.loads(body[start : end + 1])
    except ValueError as exc:
        raise CinepatchError(f"the reply is not valid JSON ({exc})") from exc
    return ScenePlan.from_dict(data)


@dataclass(frozen=True)
class ChatPlanner:
    """Plans by an OpenAI-compatible endpoint, e.g. ``http://host/v1``; falls back to the world."""

    base_url: str
    model: str
    api_key: str = ""
    timeout: float = 30.0
    name = "chat"

    def plan(self, prompt: str, *, width: int, height: int, fps: int, frames: int, seed: int | None) -> PlanResult:
        canvas = {"width": width, "height": height, "fps": fps, "frames": frames}
        messages = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": f"Canvas: {json.dumps(canvas)}\nVideo: {prompt}"},
        ]
        try:
            reply = chat_completion(
                self.base_url, model=self.model, api_key=self.api_key, messages=messages, timeout=self.timeout
            )
            plan = parse_reply(reply)
            for n, obj in enumerate(plan.objects):  # the models that read plans draw world objects
                look_of(obj.phrase, where=f"objects[{n}].phrase")
        except CinepatchError as exc:  # InvalidParameter is one too: it names the bad field
            fallback = WorldPlanner().plan(prompt, width=width, height=height, fps=fps, frames=frames, seed=seed)
            note = f"the chat planner at {self.base_url} gave no usable plan ({exc}); the world planner planned instead"
            return PlanResult(plan=fallback.plan, planner=fallback.planner, warnings=(note, *fallback.warnings))
        # The endpoint may ignore the canvas it was given; the boxes are normalised, so fit them to it.
        if (plan.canvas.width, plan.canvas.height) != (width, height):
            plan = plan.resized(width=width, height=height)
        if (plan.canvas.fps, plan.canvas.frames) != (fps, frames):
            plan = plan.resampled(frames=frames, fps=fps)
        return PlanResult(plan=plan, planner=self.name)
