"""The one entry, end to end: real models (tiny), real MP4s, real signatures, real ledger."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cinepatch.app import Studio, VideoRequest
from cinepatch.errors import InvalidParameter, Refused, UnknownPrompt
from cinepatch.io.video import read_video, write_image, write_video
from cinepatch.provenance import Ledger, verify

PROMPT = "a red circle moves right on a navy background"


def make(config, out: Path, **kwargs) -> tuple:
    studio = Studio(config)
    seen: list[float] = []
    with pytest.warns() if kwargs.pop("expect_warning", False) else _nothing():
        result = studio.create(VideoRequest(**kwargs), out=out, progress=seen.append)
    return result, seen


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_world_oracle_video_is_marked_signed_and_recorded(studio_config, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    result, seen = make(studio_config, out, prompt=PROMPT, seconds=2, width=128, height=128, fps=8, model="oracle", seed=3)
    assert seen[-1] == 1.0 and seen == sorted(seen)
    video = read_video(out)
    assert video.frames.shape == (16, 128, 128, 3) and video.fps == pytest.approx(8)
    assert result.expanded_prompt != PROMPT and "red" in result.expanded_prompt  # expanded
    report = verify(out, ledger=studio_config.ledger_path, trust_root=studio_config.keys_dir / "root.pem").to_dict()
    assert report["watermark"]["found"] and report["watermark"]["payload"] == int(result.payload, 16)
    assert report["c2pa"]["state"] == "trusted"
    assert report["ledger"]["prompt"] == PROMPT
    with Ledger(studio_config.ledger_path) as ledger:
        entry = ledger.get(int(result.payload, 16))
    assert entry is not None and entry.prompt == PROMPT


def test_world_oracle_output_passes_the_world_evaluator(studio_config, tmp_path: Path) -> None:
    from cinepatch.world import evaluate

    out = tmp_path / "out.mp4"
    make(studio_config, out, prompt=PROMPT, seconds=2, width=128, height=128, fps=8, model="world", seed=1)
    report = evaluate(read_video(out).frames, fps=8, prompt=PROMPT)
    assert report.passed, report.to_dict()


def _flickering(flickers: bool):
    from cinepatch.backends.world import WorldOracle

    class Flickering(WorldOracle):  # the oracle's pixels with a DiT's frame-to-frame flicker on top
        def generate(self, spec, *, progress=None) -> np.ndarray:
            frames = super().generate(spec, progress=progress).astype(np.float32)
            noise = np.random.default_rng(spec.seed + spec.frames).normal(0, 4, frames.shape)
            return np.clip(np.rint(frames + noise), 0, 255).astype(np.uint8)

    backend = Flickering()
    backend.flickers = flickers
    return backend


def _changes(config, out: Path, backend, monkeypatch, **request) -> tuple[np.ndarray, np.ndarray]:
    """Mean absolute change from each frame to the next, the last to the first: of the frames
    handed to provenance (before H.264) and of the written video."""
    studio = Studio(config)
    studio._backends["flicker"] = backend  # the Studio's cache of loaded backends
    handed = []
    finish = Studio._finish
    monkeypatch.setattr(Studio, "_finish", lambda self, frames, **kw: handed.append(frames) or finish(self, frames, **kw))
    result = studio.create(VideoRequest(model="flicker", width=128, height=128, fps=8, seed=5, **request), out=out)
    with Ledger(config.ledger_path) as ledger:  # the record says whether the frames were smoothed
        assert ledger.get(int(result.payload, 16)).parameters["temporal_denoise"] is backend.flickers

    def change(frames: np.ndarray) -> np.ndarray:
        frames = frames.astype(np.float32)
        return np.abs(np.diff(np.concatenate([frames, frames[:1]]), axis=0)).mean(axis=(1, 2, 3))

    return change(handed[0]), change(read_video(out).frames)


def test_a_flickering_models_video_is_smoothed_in_time_before_it_is_written(studio_config, tmp_path: Path,
                                                                            monkeypatch) -> None:
    request = {"prompt": "a red circle stays still on a navy background", "seconds": 2}
    _, smoothed = _changes(studio_config, tmp_path / "a.mp4", _flickering(True), monkeypatch, **request)
    _, as_made = _changes(studio_config, tmp_path / "b.mp4", _flickering(False), monkeypatch, **request)
    assert smoothed[:-1].mean() < as_made[:-1].mean() / 2, (smoothed.mean(), as_made.mean())


def test_a_loop_is_smoothed_round_its_joint(studio_config, tmp_path: Path, monkeypatch) -> None:
    handed, _ = _changes(studio_config, tmp_path / "loop.mp4", _flickering(True), monkeypatch, seconds=3,
                         prompt="a red circle stays still on a navy background", edit="loop", params={"bridge": 1})
    assert np.median(handed[:-1]) < 1.5, handed  # smoothed: the stand-in's flicker alone changes ~4.5 levels a frame
    assert handed[-1] <= 1.5 * np.median(handed[:-1]), handed  # last → first like every other step


def test_refused_prompt_writes_nothing(studio_config, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    with pytest.raises(Refused) as info:
        make(studio_config, out, prompt="a naked child", model="world")
    assert info.value.category.startswith("sexual")
    assert not out.exists() and list(tmp_path.glob("*.mp4")) == []


def test_refused_second_prompt_of_a_mix(studio_config, tmp_path: Path) -> None:
    with pytest.raises(Refused):
        make(studio_config, tmp_path / "o.mp4", prompt=PROMPT, model="world", edit="blend",
             params={"mode": "mix", "with": "a decapitated body in a pool of blood"})


def test_flagged_output_is_never_written(studio_config, tmp_path: Path, monkeypatch) -> None:
    import cinepatch.safety.frames as frames

    class FlagEverything:  # below the review: the decision and the refusal path are real
        labels = tuple(sorted(frames.EXPOSED_LABELS))

        def scores(self, images):
            return np.full((len(images), len(self.labels)), 0.99, np.float32)

    monkeypatch.setattr(frames, "_default_detector", lambda: FlagEverything())
    out = tmp_path / "out.mp4"
    with pytest.raises(Refused) as info:
        make(studio_config, out, prompt=PROMPT, model="world", seconds=1, fps=8)
    assert info.value.stage == "output"
    assert not out.exists() and not any(tmp_path.iterdir())


def test_unknown_prompt_is_refused_by_the_oracle_only(studio_config, tmp_path: Path) -> None:
    with pytest.raises(UnknownPrompt):
        make(studio_config, tmp_path / "a.mp4", prompt="a portrait of a violinist", model="world")
    result, _ = make(studio_config, tmp_path / "b.mp4", prompt="a portrait of a violinist", model="tiny",
                     seconds=1, width=32, height=32, fps=8, expect_warning=True)
    assert any("procedural world" in w for w in result.warnings)


def test_tiny_model_any_frame_count_and_seed_determinism(studio_config, tmp_path: Path) -> None:
    studio = Studio(studio_config)
    result = studio.create(VideoRequest(prompt=PROMPT, frames=10, width=32, height=32, fps=8, model="tiny", seed=5),
                           out=tmp_path / "a.mp4")
    assert read_video(result.path).frames.shape == (10, 32, 32, 3)
    assert result.model == "cinepatch-tiny-test"
    backend, _ = studio.backend("tiny")
    from cinepatch.backends.base import GenerationSpec

    spec = GenerationSpec(prompt=PROMPT, frames=9, width=32, height=32, fps=8, seed=5)
    assert np.array_equal(backend.generate(spec), backend.generate(spec))
    assert not np.array_equal(backend.generate(spec), backend.generate(spec.__class__(**{**spec.__dict__, "seed": 6})))


def test_size_and_fps_left_open_are_the_models_own(studio_config, tmp_path: Path) -> None:
    studio = Studio(studio_config)
    tiny = studio.create(VideoRequest(prompt=PROMPT, seconds=1.5, model="tiny", seed=1), out=tmp_path / "t.mp4")
    assert (tiny.width, tiny.height, tiny.fps, tiny.frames) == (48, 32, 6, 9)
    assert read_video(tiny.path).frames.shape == (9, 32, 48, 3)
    oracle = studio.create(VideoRequest(prompt=PROMPT, seconds=0.5, model="world", seed=1), out=tmp_path / "w.mp4")
    assert (oracle.width, oracle.height, oracle.fps) == (128, 128, 16)
    # A preset's fps comes before the model's; a stated size before both.
    sized = studio.create(VideoRequest(prompt=PROMPT, seconds=1, width=32, height=32, model="tiny", seed=1),
                          out=tmp_path / "s.mp4")
    assert (sized.width, sized.height, sized.fps) == (32, 32, 6)
    with pytest.raises(InvalidParameter, match="size"):
        VideoRequest(prompt=PROMPT, width=64)


def test_sizes_a_model_cannot_make_are_rejected_before_compute(studio_config, tmp_path: Path) -> None:
    with pytest.raises(InvalidParameter, match="width=1024 is invalid: allowed 32 to 512"):
        make(studio_config, tmp_path / "a.mp4", prompt=PROMPT, model="world", width=1024, height=32, seconds=1, fps=8)
    assert not (tmp_path / "a.mp4").exists()


@pytest.fixture()
def source_clip(tmp_path: Path) -> Path:
    from cinepatch.world import parse_prompt, render

    frames = render(parse_prompt(PROMPT), width=32, height=32, fps=8, frames=16, seed=0)
    return write_video(tmp_path / "source.mp4", frames, fps=8)


@pytest.mark.parametrize(
    "edit, params, seconds, expected_frames",
    [
        ("extend", {"seconds": 1.0}, 2.0, 16 + 8),
        ("remix", {"strength": 0.5}, 2.0, 16),
        ("recut", {"ranges": [[1.0, 1.5], [0.0, 0.5]], "at": 0.5}, 2.5, 20),
        ("loop", {"bridge": 0.5}, 2.0, 16 + 4),
    ],
)
def test_edits_on_the_tiny_model(studio_config, tmp_path: Path, source_clip: Path, edit, params, seconds, expected_frames) -> None:
    out = tmp_path / f"{edit}.mp4"
    result = Studio(studio_config).create(
        VideoRequest(prompt=PROMPT, seconds=seconds, width=32, height=32, fps=8, model="tiny", seed=1,
                     edit=edit, sources=(source_clip,), params=params),
        out=out,
    )
    assert read_video(out).frames.shape[0] == expected_frames == result.frames
    report = verify(out, ledger=studio_config.ledger_path).to_dict()
    assert report["c2pa"]["state"] == "valid"  # signed by the local CA, not given as a trust anchor here
    assert json.dumps(report["c2pa"]).count("source.mp4") >= 1  # the source is named as an ingredient


def test_image_to_video_and_long_video_on_the_tiny_model(studio_config, tmp_path: Path) -> None:
    image = write_image(tmp_path / "still.png", np.full((40, 40, 3), 200, np.uint8))
    studio = Studio(studio_config)
    with pytest.warns(UserWarning, match="scaled to cover 32x32"):
        studio.create(VideoRequest(prompt=PROMPT, seconds=1, width=32, height=32, fps=8, model="tiny",
                                   edit="image", sources=(image,)), out=tmp_path / "i2v.mp4")
    with pytest.warns(UserWarning, match="overlapping windows"):
        long = studio.create(VideoRequest(prompt=PROMPT, seconds=5, width=32, height=32, fps=8, model="tiny"),
                             out=tmp_path / "long.mp4")
    assert read_video(long.path).frames.shape[0] == 40


def test_cli_generate_writes_a_verified_video(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    env_dirs = ["--config-dir", str(tmp_path / "c"), "--data-dir", str(tmp_path / "d")]
    run = subprocess.run(
        [sys.executable, "-m", "cinepatch", "generate", "a red circle bounces on a navy background",
         "-o", str(out), "--seconds", "1", "--fps", "8", "--size", "64x64", "--seed", "4", *env_dirs],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert "wrote" in run.stdout and out.exists()
    check = subprocess.run([sys.executable, "-m", "cinepatch", "verify", str(out), "--json"],
                           capture_output=True, text=True, timeout=120)
    assert json.loads(check.stdout)["watermark"]["found"]


def test_cli_errors_exit_nonzero_with_one_line(tmp_path: Path) -> None:
    env_dirs = ["--config-dir", str(tmp_path / "c"), "--data-dir", str(tmp_path / "d")]
    bad = subprocess.run([sys.executable, "-m", "cinepatch", "generate", "a red circle", "-o", str(tmp_path / "o.mp4"),
                          "--fps", "0", *env_dirs], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "fps=0 is invalid" in bad.stderr
    refused = subprocess.run([sys.executable, "-m", "cinepatch", "generate", "a naked child", "-o", str(tmp_path / "o.mp4"),
                              *env_dirs], capture_output=True, text=True, timeout=120)
    assert refused.returncode == 3 and "refused" in refused.stderr
    assert not (tmp_path / "o.mp4").exists()


def test_cli_edit_extend_and_storyboard(tmp_path: Path, source_clip: Path) -> None:
    env_dirs = ["--config-dir", str(tmp_path / "c"), "--data-dir", str(tmp_path / "d"), "--model", "world", "--fps", "8"]
    out = tmp_path / "longer.mp4"
    run = subprocess.run([sys.executable, "-m", "cinepatch", "edit", "extend", str(source_clip), PROMPT, "--add", "1",
                          "-o", str(out), *env_dirs], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert read_video(out).frames.shape == (24, 32, 32, 3)  # 2 s source + 1 s, at the source's size
    board = tmp_path / "board.yaml"
    board.write_text(f"cards:\n  - {{at: 0, prompt: {PROMPT}}}\n  - {{at: 1, video: {source_clip.name}}}\n")
    story = tmp_path / "story.mp4"
    run = subprocess.run([sys.executable, "-m", "cinepatch", "edit", "storyboard", str(board), "--seconds", "2",
                          "--size", "32x32", "-o", str(story), *env_dirs], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert read_video(story).frames.shape[0] == 16
    bad = subprocess.run([sys.executable, "-m", "cinepatch", "edit", "recut", str(source_clip), PROMPT, "--range", "3:1",
                          "-o", str(tmp_path / "r.mp4"), *env_dirs], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "ranges" in bad.stderr and not (tmp_path / "r.mp4").exists()
