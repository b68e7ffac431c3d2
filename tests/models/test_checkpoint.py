"""The default model the package ships (src/cinepatch/weights/default) loads, samples
deterministically and draws a few world prompts as their plans say."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cinepatch.pipeline import Pipeline
from cinepatch.planning.world import plan_prompt
from cinepatch.world import parse_prompt
from cinepatch.world.evaluate import evaluate

from cinepatch.backends.embedded import SHIPPED_MODEL as CHECKPOINT


@pytest.fixture(scope="module")
def pipe() -> Pipeline:
    return Pipeline.from_pretrained(CHECKPOINT)


def test_checkpoint_loads_with_its_stated_shape(pipe: Pipeline) -> None:
    config = json.loads((CHECKPOINT / "config.json").read_text(encoding="utf-8"))
    assert config["dit"]["layout_dim"] == 32 and config["dit"]["layout_head"] == 64
    assert list(config["dit"]["patch"]) == [2, 4, 4] and config["serving"]["default_size"] == [128, 128]
    assert sum(p.numel() for p in pipe.dit.parameters()) > 9_000_000  # the 9.7 M DiT, not a tiny one


def _draw(pipe: Pipeline, prompt: str, seed: int, frames: int = 9) -> np.ndarray:
    plan = plan_prompt(prompt, width=128, height=128, fps=8, frames=frames, seed=0)
    return pipe.generate(prompt, frames=frames, width=128, height=128, fps=8, seed=seed, steps=8, plans=[plan],
                         progress=False)[0]


def test_checkpoint_generates_deterministically_for_a_seed(pipe: Pipeline) -> None:
    prompt = "a red circle moves right on a navy background"
    a, b, c = _draw(pipe, prompt, 3), _draw(pipe, prompt, 3), _draw(pipe, prompt, 4)
    assert a.shape == (9, 128, 128, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("prompt", [
    "a large yellow triangle stays still on a plain gray background",
    "two small red circles move right on a plain navy background",
    "a medium green square moves up on a plain brown background",
    "a large blue circle and a small white triangle on a plain black background",
])
def test_checkpoint_draws_what_its_plan_says(pipe: Pipeline, prompt: str) -> None:
    """Colour, count, size and background of a few suite-like prompts, planned as `generate`
    plans them (the evaluator reads the pixels)."""
    video = _draw(pipe, prompt, 0)
    checks = {c.name.split(":")[0]: c.passed for c in evaluate(video, fps=8, scene=parse_prompt(prompt)).checks}
    assert all(checks[k] for k in ("colour", "count", "size", "background") if k in checks), checks
