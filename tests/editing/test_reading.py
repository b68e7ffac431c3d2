"""Reading a plan from pixels: the oracle's render of a plan reads back as that plan."""

from __future__ import annotations

import numpy as np
import pytest

from cinepatch.editing.reading import read_frames, velocities
from cinepatch.planning import plan_prompt, render_plan


def _centres(track: np.ndarray) -> np.ndarray:
    return np.stack([(track[:, 0] + track[:, 2]) / 2, (track[:, 1] + track[:, 3]) / 2], 1)


@pytest.mark.parametrize(
    "prompt",
    [
        "a small red circle moves right and a large blue square moves down on a striped navy background",
        "a green triangle passes behind the pillar moving right",
        "a yellow circle bounces on a checkered forest background",
        "a white square enters from the left",
    ],
)
def test_an_oracle_render_reads_back_as_its_plan(prompt: str) -> None:
    plan = plan_prompt(prompt, width=128, height=96, fps=8, frames=24, seed=3)
    reading = read_frames(render_plan(plan), fps=8)
    assert reading.plan is not None and reading.warnings == ()
    got = reading.plan
    assert got.canvas == plan.canvas
    assert (got.background.colour, got.background.texture) == (plan.background.colour, plan.background.texture)
    assert len(got.occluders) == len(plan.occluders)
    assert sorted(o.phrase for o in got.objects) == sorted(o.phrase for o in plan.objects)
    for obj in plan.objects:
        (match,) = [o for o in got.objects if o.phrase == obj.phrase]
        on_canvas = (obj.track[:, 2] > 0) & (obj.track[:, 0] < 1)  # off-canvas frames are a guess
        error = np.abs(_centres(match.track) - _centres(obj.track))[on_canvas]
        assert error.max() < 0.02, (obj.phrase, error.max())  # within 2% of the canvas on every frame
        width_error = np.abs((match.track[:, 2] - match.track[:, 0]) - (obj.track[:, 2] - obj.track[:, 0]))
        assert width_error.max() < 0.02


def test_velocities_are_the_tracks_slopes() -> None:
    plan = plan_prompt("a red circle moves right", width=128, height=128, fps=8, frames=16, seed=0)
    got = velocities(read_frames(render_plan(plan), fps=8).plan, first=8, last=15)
    # WORLD.md: 0.30 of the shorter side per second, here 8 frames per second
    assert got[0, 0] == pytest.approx(0.30 / 8, abs=0.003) and abs(got[0, 1]) < 1e-3


@pytest.mark.parametrize(
    "frames, why",
    [
        (np.zeros((4, 64, 64, 3), np.uint8), "no world object is visible"),
        (np.zeros((4, 60, 64, 3), np.uint8), "outside the plan format"),
        (np.zeros((64, 64, 3), np.uint8), "are not (T, H, W, 3)"),
    ],
)
def test_unreadable_frames_give_no_plan_and_a_warning(frames: np.ndarray, why: str) -> None:
    reading = read_frames(frames, fps=8)
    assert reading.plan is None
    assert len(reading.warnings) == 1 and why in reading.warnings[0]


def test_noise_never_crashes() -> None:
    rng = np.random.default_rng(0)
    reading = read_frames(rng.integers(0, 256, (3, 32, 48, 3), dtype=np.uint8), fps=8)
    assert reading.plan is None or 1 <= len(reading.plan.objects) <= 3
