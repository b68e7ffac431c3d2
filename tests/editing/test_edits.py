"""Each edit's contract over the keyframe primitive, and its bad inputs.

The backend here records every pass and honours pinned keyframes by pasting them over frames it
fills with its pass number — enough to see which frames each edit pins, keeps, and makes. The
same plans run on the real models in tests/test_app.py and benchmarks/edit_quality.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from cinepatch.backends.base import GenerationSpec
from cinepatch.editing import plan as editing_plan
from cinepatch.editing import read_storyboard
from cinepatch.errors import InvalidParameter
from cinepatch.io.video import Video

W = H = 32
FPS = 8


def plan(*args, **kw):
    """``editing.plan`` for a model whose VAE makes a latent frame of 4 pixel frames (unless
    ``latent_step`` is given) and that sets no pass limit (unless ``window`` is given)."""
    kw.setdefault("window", None)
    kw.setdefault("latent_step", 4)
    return editing_plan(*args, **kw)


class RecordingBackend:
    name = "recording"
    frame_step = 1  # any count, like the embedded model

    def __init__(self, max_frames: int | None = 33, latent_step: int = 4) -> None:
        self.max_frames = max_frames
        self.latent_step = latent_step
        self.takes_plan = False
        self.passes: list[GenerationSpec] = []

    def check(self, spec: GenerationSpec) -> None:
        if self.max_frames is not None and spec.frames > self.max_frames:
            raise InvalidParameter("frames", spec.frames, f"at most {self.max_frames}")

    def generate(self, spec: GenerationSpec, *, progress=None) -> np.ndarray:
        self.check(spec)
        self.passes.append(spec)
        value = 100 + len(self.passes)
        frames = np.full((spec.frames, spec.height, spec.width, 3), value, np.uint8)
        if spec.keyframes is not None:
            for image, index in zip(spec.keyframes.frames, spec.keyframes.indices):
                frames[index] = image
        if progress:
            progress(1.0)
        return frames


def clip(n: int, start: int = 0, size: int = W) -> Video:
    frames = np.stack([np.full((size, size, 3), (start + i) % 100, np.uint8) for i in range(n)])
    return Video(frames=frames, fps=FPS)


def spec(seconds: float = 4.0, prompt: str = "a red circle moves right") -> GenerationSpec:
    return GenerationSpec(prompt=prompt, frames=round(seconds * FPS), width=W, height=H, fps=FPS, seed=1)


def run(edit, s, inputs, params=None, backend=None, **kw):
    backend = backend or RecordingBackend()
    p = plan(edit, s, inputs, params or {}, window=backend.max_frames, latent_step=backend.latent_step, **kw)
    for step in p.specs:
        backend.check(step)
    seen = []
    out = p.run(backend, progress=seen.append)
    assert seen and 0 <= min(seen) and max(seen) <= 1.0 + 1e-9
    return out, backend, p


def value(frame: np.ndarray) -> int:
    return int(frame[0, 0, 0])


def test_text_to_video_is_one_pass_when_it_fits() -> None:
    out, backend, _ = run(None, spec(2), [])
    assert out.shape == (16, H, W, 3) and len(backend.passes) == 1


def test_long_video_is_windows_that_each_see_the_last_second() -> None:
    out, backend, p = run(None, spec(20), [])
    assert out.shape[0] == 160
    assert all(step.frames <= 33 for step in backend.passes)
    later = backend.passes[1]
    assert later.keyframes is not None and later.keyframes.indices == tuple(range(9))
    assert any("overlapping windows" in w for w in p.warnings)


def test_image_to_video_pins_the_image_where_asked() -> None:
    image = Video(frames=np.full((1, 64, 48, 3), 7, np.uint8), fps=1.0)
    for at, index in (("start", 0), ("end", 31), (2.0, 16)):
        out, backend, p = run("image", spec(4), [image], {"at": at})
        assert backend.passes[0].keyframes.indices == (index,)
        assert value(out[index]) == 7
    assert any("scaled to cover 32x32" in w for w in p.warnings)
    with pytest.raises(InvalidParameter, match="at"):
        plan("image", spec(4), [image], {"at": 9.0})
    with pytest.raises(InvalidParameter, match="sources"):
        plan("image", spec(4), [clip(5)], {})


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_extend_keeps_the_source_exactly_and_adds_seconds(direction: str) -> None:
    source = clip(16, start=10)
    out, backend, _ = run("extend", spec(), [source], {"seconds": 3, "direction": direction})
    assert len(out) == 16 + 24
    kept = out[:16] if direction == "forward" else out[-16:]
    assert np.array_equal(kept, source.frames)
    ctx = backend.passes[0].keyframes
    expected = source.frames[-len(ctx.indices):] if direction == "forward" else source.frames[::-1][-len(ctx.indices):]
    assert np.array_equal(ctx.frames, expected)


def test_remix_hands_the_source_and_strength_to_the_backend() -> None:
    source = clip(12, size=64)
    out, backend, p = run("remix", spec(prompt="a blue square"), [source], {"strength": 0.4})
    step = backend.passes[0]
    assert step.strength == 0.4 and step.source.shape == (12, H, W, 3) and len(out) == 12
    for bad in (0, 1.5, "high", True):
        with pytest.raises(InvalidParameter, match="strength"):
            plan("remix", spec(), [source], {"strength": bad})


def test_remix_without_a_strength_re_imagines_fully_only_when_a_plan_keeps_the_motion() -> None:
    from cinepatch.editing.scenes import Planning
    from cinepatch.planning import plan_prompt, render_plan

    world = plan_prompt("a medium red circle moves right on a navy background", width=64, height=64, fps=FPS,
                        frames=12, seed=0)
    readable = Video(frames=render_plan(world), fps=FPS)
    planning = Planning(prompt=plan_prompt("a blue circle", width=64, height=64, fps=FPS, frames=12, seed=0))
    strengths = {}
    for name, source, with_plan in (("planned", readable, planning), ("unreadable", clip(12, size=64), planning),
                                    ("no planning", readable, None)):
        p = plan("remix", spec(prompt="a blue circle"), [source], {}, planning=with_plan)
        strengths[name] = (p.specs[0].strength, p.scene is not None)
    # unreadable: the prompt's own plan guides it, but only the pixels carry the source's motion
    assert strengths == {"planned": (1.0, True), "unreadable": (0.7, True), "no planning": (0.7, False)}
    given = plan("remix", spec(prompt="a blue circle"), [readable], {"strength": 0.5}, planning=planning)
    assert given.specs[0].strength == 0.5  # a strength the person gives always applies


def test_recut_keeps_ranges_reordered_at_the_chosen_time() -> None:
    source = clip(32)  # values 0..31, one per frame
    out, _, _ = run("recut", spec(4), [source], {"ranges": [[2, 3], [0, 0.5]], "at": 1.0})
    assert len(out) == 32
    kept = [value(f) for f in out[8 : 8 + 12]]
    assert kept == list(range(16, 24)) + list(range(0, 4))
    for ranges in ([[3, 2]], [[0, 5]], [], "0-1", [[0, 1, 2]]):
        with pytest.raises(InvalidParameter, match="ranges"):
            plan("recut", spec(4), [source], {"ranges": ranges})
    with pytest.raises(InvalidParameter, match="at"):
        plan("recut", spec(4), [source], {"ranges": [[0, 2]], "at": 3.5})


def test_loop_from_a_video_ends_leading_into_its_start() -> None:
    source = clip(24, start=30)
    out, backend, _ = run("loop", spec(), [source], {"bridge": 1})
    assert np.array_equal(out[:24], source.frames) and len(out) == 24 + 8
    pins = backend.passes[-1].keyframes
    total = backend.passes[-1].frames
    tail_at = [i for i in pins.indices if i >= total - 9]
    assert np.array_equal(pins.frames[-len(tail_at):], source.frames[: len(tail_at)])


def test_loop_from_a_prompt_has_the_requested_length() -> None:
    out, backend, _ = run("loop", spec(4), [])
    assert len(out) == 32 and len(backend.passes) == 2


def test_blend_join_keeps_both_videos_around_a_transition() -> None:
    a, b = clip(16, start=0), clip(16, start=50)
    out, backend, _ = run("blend", spec(), [a, b], {"transition": 1.5})
    assert len(out) == 16 + 12 + 16
    assert np.array_equal(out[:16], a.frames) and np.array_equal(out[-16:], b.frames)
    with pytest.raises(InvalidParameter, match="first video"):
        plan("blend", spec(), [Video(frames=a.frames[:1], fps=FPS), b], {})
    with pytest.raises(InvalidParameter, match="sources"):
        plan("blend", spec(), [a], {})


def test_blend_mix_expands_both_prompts_into_one() -> None:
    seen = []
    out, backend, _ = run("blend", spec(2), [], {"mode": "mix", "with": "a blue square bounces"},
                          prompt="a red circle moves right", expand=lambda t: seen.append(t) or t.upper())
    assert seen == ["a red circle moves right and a blue square bounces"]
    assert backend.passes[0].prompt == seen[0].upper()


def test_storyboard_cards_become_one_video(tmp_path) -> None:
    image = Video(frames=np.full((1, H, W, 3), 77, np.uint8), fps=1.0)
    cards = [{"at": 0, "prompt": "a red circle moves right"}, {"at": 2, "source": 0}, {"at": 3, "prompt": "a blue square"}]
    out, backend, _ = run("storyboard", spec(5), [image], {"cards": cards}, expand=str.upper)
    assert len(out) == 40
    assert value(out[16]) == 77  # the image card's first frame
    assert backend.passes[0].prompt == "A RED CIRCLE MOVES RIGHT"
    assert backend.passes[-1].prompt == "A BLUE SQUARE"


@pytest.mark.parametrize(
    "cards, match",
    [
        ([{"at": 1, "prompt": "x"}], "first card"),
        ([{"at": 0, "prompt": "x", "seconds": 3}, {"at": 2, "prompt": "y"}], "do not overlap"),
        ([{"at": 0, "prompt": "x"}, {"at": 0, "prompt": "y"}], "do not overlap"),
        ([{"at": 0, "prompt": "x"}, {"at": 9, "prompt": "y"}], "card.at"),
        ([{"at": 0}], "a prompt, an image or a video"),
        ([{"at": 0, "source": 3}], "card.source"),
        ([{"at": 0, "prompt": "x", "colour": "red"}], "card.colour"),
    ],
)
def test_storyboard_errors_come_before_compute(cards, match) -> None:
    with pytest.raises(InvalidParameter, match=match):
        plan("storyboard", spec(5), [], {"cards": cards})


def test_storyboard_file_resolves_media_paths(tmp_path) -> None:
    (tmp_path / "board.yaml").write_text("cards:\n  - {at: 0, prompt: a red circle}\n  - {at: 2, image: still.png}\n")
    cards, sources = read_storyboard(tmp_path / "board.yaml")
    assert cards[1] == {"at": 2, "source": 0} and sources == [tmp_path / "still.png"]


def test_unknown_edit_and_stray_sources() -> None:
    with pytest.raises(InvalidParameter, match="edit"):
        plan("warp", spec(), [], {})
    with pytest.raises(InvalidParameter, match="sources"):
        plan(None, spec(), [clip(4)], {})


def test_continuations_always_make_progress_even_at_one_fps() -> None:
    source = Video(frames=clip(6).frames, fps=1.0)
    s = GenerationSpec(prompt="p", frames=4, width=W, height=H, fps=1, seed=0)
    out, backend, _ = run("extend", s, [source], {"seconds": 7}, backend=RecordingBackend(max_frames=None))
    assert len(out) == 13 and len(backend.passes) >= 1


def test_a_short_loop_bridge_is_whole_latent_groups_and_generated() -> None:
    s = GenerationSpec(prompt="p", frames=32, width=W, height=H, fps=16, seed=0)
    source = Video(frames=clip(32).frames, fps=16.0)
    out, backend, _ = run("loop", s, [source], {"bridge": 0.1}, backend=RecordingBackend(max_frames=65))
    last = backend.passes[-1]
    free = last.frames - len(last.keyframes.indices)
    assert free == 4 and len(out) == 32 + 4  # 0.1 s at 16 fps is 2 frames: one latent group of 4
    assert (last.frames - len(last.keyframes.indices)) % 4 == 0


def test_a_model_that_does_not_compress_time_pins_frame_by_frame() -> None:
    # The shipped world model's VAE keeps every frame: a bridge of 2 frames stays 2, and a
    # continuation's context is a second of frames, not whole groups of 4.
    s = GenerationSpec(prompt="p", frames=32, width=W, height=H, fps=16, seed=0)
    source = Video(frames=clip(32).frames, fps=16.0)
    out, backend, _ = run("loop", s, [source], {"bridge": 0.1}, backend=RecordingBackend(max_frames=65, latent_step=1))
    last = backend.passes[-1]
    assert last.frames - len(last.keyframes.indices) == 2 and len(out) == 32 + 2
    source = Video(frames=clip(22).frames, fps=6.0)
    s = GenerationSpec(prompt="p", frames=22, width=W, height=H, fps=6, seed=0)
    contexts = []
    for step in (1, 4):
        _, backend, _ = run("extend", s, [source], {"seconds": 2}, backend=RecordingBackend(max_frames=33, latent_step=step))
        contexts.append(len(backend.passes[0].keyframes.indices))
    assert contexts == [7, 9]  # a second at 6 fps: 1 + 6 frames, or 1 + 4·2 in groups of 4


class GridBackend(RecordingBackend):
    frame_step = 8  # like LTX-Video: 8n+1 frames, 8 frames per latent frame

    def __init__(self, max_frames: int | None = 33) -> None:
        super().__init__(max_frames, latent_step=8)

    def check(self, spec: GenerationSpec) -> None:
        super().check(spec)
        if (spec.frames - 1) % 8:
            raise InvalidParameter("frames", spec.frames, "8n+1")


def test_every_window_is_made_on_the_backends_frame_grid() -> None:
    s = GenerationSpec(prompt="p", frames=32, width=W, height=H, fps=16, seed=0)
    source = Video(frames=clip(20).frames, fps=16.0)
    out, backend, _ = run("extend", s, [source], {"seconds": 6.25}, backend=GridBackend(max_frames=None))
    assert len(out) == 20 + 100 and len(backend.passes) >= 2
    assert all((p.frames - 1) % 8 == 0 for p in backend.passes)


def test_an_edit_longer_than_a_minute_is_refused_before_compute() -> None:
    long = Video(frames=np.zeros((59 * FPS, H, W, 3), np.uint8), fps=FPS)
    with pytest.raises(InvalidParameter, match="at most 60 in all"):
        plan("extend", spec(), [long], {"seconds": 2}, window=33)


def test_storyboard_clip_cards_play_for_their_seconds_and_progress_only_rises() -> None:
    cards = [{"at": 0, "source": 0, "seconds": 1}, {"at": 3, "prompt": "a blue square"}]
    out, backend, p = run("storyboard", spec(5), [clip(30, start=40)], {"cards": cards})
    assert [value(f) for f in out[:8]] == list(range(40, 48))  # 1 s of the clip
    assert value(out[8]) != 48  # then the card continues with generated frames
    seen: list[float] = []
    plan("storyboard", spec(5), [clip(30)], {"cards": cards}, window=33).run(RecordingBackend(), progress=seen.append)
    assert seen == sorted(seen) and seen[-1] <= 1.0


def test_storyboard_cards_closer_than_a_frame_are_refused() -> None:
    cards = [{"at": 0, "prompt": "x"}, {"at": 0.01, "prompt": "y"}]
    with pytest.raises(InvalidParameter, match="one frame"):
        plan("storyboard", spec(5), [], {"cards": cards})


class RedrawingBackend(RecordingBackend):
    """Pastes only the keyframes it is told to keep exactly; released ones it redraws (its value)."""

    def generate(self, spec: GenerationSpec, *, progress=None) -> np.ndarray:
        self.check(spec)
        self.passes.append(spec)
        frames = np.full((spec.frames, spec.height, spec.width, 3), 200, np.uint8)
        kf = spec.keyframes
        for image, index, level in zip(kf.frames, kf.indices, kf.release or (0.0,) * len(kf.indices)):
            if level == 0:
                frames[index] = image
        if progress:
            progress(1.0)
        return frames


def _handed_over(kept: np.ndarray, levels) -> np.ndarray:
    w = np.asarray(levels, np.float32)[:, None, None, None]
    return np.rint((1 - w) * kept.astype(np.float32) + w * 200).astype(np.uint8)


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_extend_hands_the_clip_over_to_the_new_frames_across_a_second(direction: str) -> None:
    source = clip(16)
    out, backend, _ = run("extend", spec(), [source], {"seconds": 2, "direction": direction},
                          backend=RedrawingBackend(latent_step=1))
    levels = backend.passes[0].keyframes.release
    context = len(backend.passes[0].keyframes.indices)
    assert context == 9 and levels == tuple(i / 9 for i in range(9))  # the first kept exactly, then rising
    assert len(out) == 16 + 16
    kept = source.frames if direction == "forward" else source.frames[::-1]
    mixed = _handed_over(kept[-8:], levels[1:])
    if direction == "backward":
        out = out[::-1]  # backwards is forwards on the reversed clip
    assert np.array_equal(out[:8], kept[:8])  # the clip before its last second: untouched
    assert np.array_equal(out[8:16], mixed)  # its last second: more of the model's frame each frame
    assert (out[16:] == 200).all()


def test_blend_hands_over_at_both_ends_of_the_bridge() -> None:
    a, b = clip(16), clip(16, start=50)
    out, backend, _ = run("blend", spec(), [a, b], {"transition": 1}, backend=RedrawingBackend(latent_step=1))
    (made,) = backend.passes
    n = len(made.keyframes.indices) // 2
    lead, back = made.keyframes.release[:n], made.keyframes.release[n:]
    assert lead == tuple(i / n for i in range(n)) and back == lead[::-1]
    assert len(out) == 16 + 8 + 16
    assert np.array_equal(out[:16 - n + 1], a.frames[:16 - n + 1])
    assert np.array_equal(out[16 - n + 1 : 16], _handed_over(a.frames[16 - n + 1 :], lead[1:]))
    assert (out[16:24] == 200).all()
    assert np.array_equal(out[24 : 24 + n - 1], _handed_over(b.frames[: n - 1], back[:-1]))
    assert np.array_equal(out[24 + n - 1 :], b.frames[n - 1 :])


def test_loop_hands_over_at_both_ends_of_its_bridge() -> None:
    source = clip(24)
    out, backend, _ = run("loop", spec(), [source], {"bridge": 1}, backend=RedrawingBackend(latent_step=1))
    (made,) = backend.passes
    n = len(made.keyframes.indices) // 2
    lead, back = made.keyframes.release[:n], made.keyframes.release[n:]
    assert lead == tuple(i / n for i in range(n)) and back == lead[::-1]
    assert len(out) == 24 + 8
    assert np.array_equal(out[: n - 1], _handed_over(source.frames[: n - 1], back[:-1]))  # the redrawn opening
    assert np.array_equal(out[n - 1 : 24 - n + 1], source.frames[n - 1 : 24 - n + 1])
    assert np.array_equal(out[24 - n + 1 : 24], _handed_over(source.frames[24 - n + 1 :], lead[1:]))
    assert (out[24:] == 200).all()  # the bridge, which leads into the opening
