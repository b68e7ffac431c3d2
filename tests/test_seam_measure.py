"""The edit benchmark's seam measure (benchmarks/edit_quality.py): a perfect edit — the world's
own render, cut where an edit would join — passes it, and a jump, a flash or a quick dissolve
at the joint fails it."""

from __future__ import annotations

import importlib.util
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from cinepatch.io.video import read_video, write_video
from cinepatch.world import random_scene, render

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("edit_quality", ROOT / "benchmarks" / "edit_quality.py")
assert _spec is not None and _spec.loader is not None
edit_quality = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(edit_quality)

FPS, SIZE, JOINT = 8, 128, 16  # a 4 s clip joined at 2 s, as the benchmark's extends are


def _truth(seed: int, *, bounce: bool, tmp_path: Path) -> np.ndarray:
    rng = np.random.default_rng(seed)
    scene = random_scene(rng, max_objects=1, exits=False, pillar=False, pan=False)
    if bounce:
        scene = replace(scene, objects=tuple(replace(o, motion="bounce", speed="normal", start=None) for o in scene.objects))
    frames = render(scene, width=SIZE, height=SIZE, fps=FPS, frames=4 * FPS, seed=seed)
    return read_video(write_video(tmp_path / "truth.mp4", frames, fps=FPS)).frames


def _handovers(frames: np.ndarray) -> float:
    """The worst of a forward extend's handover (the second before the joint) and a backward one's."""
    return max(edit_quality.handover_seam(frames, JOINT - FPS, JOINT), edit_quality.handover_seam(frames, JOINT, JOINT + FPS))


@pytest.mark.parametrize("bounce", [False, True], ids=["random", "bounce"])
def test_the_world_itself_has_no_seam(bounce: bool, tmp_path: Path) -> None:
    for seed in range(4):
        assert _handovers(_truth(seed, bounce=bounce, tmp_path=tmp_path)) < 1.5


def test_a_bounce_is_no_seam_though_its_speed_varies(tmp_path: Path) -> None:
    # why the seam is read against the motion next to it: the whole clip's median change puts a
    # bounce's own impacts above 2x
    worst = [(_handovers(truth), edit_quality.clip_seam(truth, JOINT - FPS, JOINT))
             for truth in (_truth(seed, bounce=True, tmp_path=tmp_path) for seed in range(4))]  # fmt: skip
    assert all(local < 1.5 for local, _ in worst)
    assert max(whole for _, whole in worst) > 2


def test_a_jump_a_flash_and_a_quick_dissolve_are_seams(tmp_path: Path) -> None:
    truth = _truth(1, bounce=False, tmp_path=tmp_path)
    other = _truth(2, bounce=False, tmp_path=tmp_path)
    jumped = truth.copy()
    jumped[JOINT:] = np.roll(truth[JOINT:], 12, axis=(1, 2))  # everything moved 12 px at the joint
    flashed = truth.copy()
    flashed[JOINT - 3] = np.clip(truth[JOINT - 3].astype(np.int16) + 8, 0, 255)  # one frame brighter
    dissolved = truth.astype(np.float32)
    for t in range(JOINT, len(truth)):  # to another scene over three frames
        a = min(1.0, (t - JOINT + 1) / 3)
        dissolved[t] = (1 - a) * truth[t] + a * other[t]
    for seamed in (jumped, flashed, dissolved.round().astype(np.uint8)):
        assert _handovers(seamed) > 2
