"""Every edit plans its output, on the world oracle (which draws a plan exactly).

Each test makes a real MP4 through :class:`Studio` and reads it back: the stored plan is the one
the edit made, and what the oracle drew follows it (extensions continue the source's motion,
loops end where they start, a remix keeps the source's path in the new prompt's colour …).
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from cinepatch.app import Studio, VideoRequest
from cinepatch.editing.reading import read_frames
from cinepatch.editing.scenes import continued, joined, looped, reversed_plan, window
from cinepatch.io.video import read_video, write_image, write_video
from cinepatch.planning import ScenePlan, plan_prompt, render_plan
from cinepatch.provenance import Ledger

FPS = 8
SIZE = 128


@pytest.fixture
def studio(tmp_path: Path) -> Studio:
    from cinepatch.config import load_config

    return Studio(load_config(None, config_dir=tmp_path / "config", data_dir=tmp_path / "data"))


def _clip(
    tmp_path: Path, prompt: str, seconds: float = 2, name: str = "src.mp4", seed: int = 0, start: tuple | None = None
) -> tuple[Path, ScenePlan]:
    """An oracle clip of ``prompt``; ``start`` moves the first object's track to start centred
    there (so a test can keep it on the canvas through the edit)."""
    plan = plan_prompt(prompt, width=SIZE, height=SIZE, fps=FPS, frames=round(seconds * FPS), seed=seed)
    if start is not None:
        track = plan.objects[0].track
        shift = np.array(start) - (track[0, :2] + track[0, 2:]) / 2
        moved = track + np.concatenate([shift, shift])
        plan = replace(plan, objects=(replace(plan.objects[0], boxes=tuple(map(tuple, moved.tolist()))), *plan.objects[1:]))
    path = tmp_path / name
    write_video(path, render_plan(plan), fps=FPS)
    return path, plan


def _recording_oracle() -> tuple[object, list]:
    """The world oracle, and the list of every pass it is asked for."""
    from cinepatch.backends.world import WorldOracle

    asked: list = []

    class Recording(WorldOracle):
        def generate(self, spec, **kw):
            asked.append(spec)
            return super().generate(spec, **kw)

    return Recording(), asked


def _make(studio: Studio, tmp_path: Path, **kw) -> tuple[object, np.ndarray]:
    kw.setdefault("model", "world")
    kw.setdefault("fps", FPS)
    kw.setdefault("width", SIZE)
    kw.setdefault("height", SIZE)
    kw.setdefault("seed", 0)
    out = tmp_path / f"out-{kw.get('edit')}.mp4"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = studio.create(VideoRequest(**kw), out=out)
    return result, read_video(out).frames


def _centre_x(plan: ScenePlan, n: int = 0) -> np.ndarray:
    track = plan.objects[n].track
    return (track[:, 0] + track[:, 2]) / 2


def _measured_x(frames: np.ndarray, colour: str) -> np.ndarray:
    reading = read_frames(frames, fps=FPS)
    (obj,) = [o for o in reading.plan.objects if colour in o.phrase]
    return (obj.track[:, 0] + obj.track[:, 2]) / 2


def test_extend_forward_continues_the_source_motion(studio: Studio, tmp_path: Path) -> None:
    src, source_plan = _clip(tmp_path, "a small red circle moves slowly right on a navy background", start=(0.15, 0.5))
    result, frames = _make(studio, tmp_path, prompt="a red circle", edit="extend", sources=(src,), seconds=1,
                           params={"seconds": 1.5})
    assert len(frames) == 16 + 12 and result.plan is not None and result.plan.frames == len(frames)
    x = _measured_x(frames, "red")
    step = np.diff(_centre_x(source_plan)).mean()  # the source's speed per frame
    assert np.allclose(np.diff(x[16:]), step, atol=0.01)  # the new frames keep it
    assert abs((x[16] - x[15]) - step) < 0.01  # and the seam is one ordinary step
    with Ledger(studio.config.ledger_path) as ledger:
        entry = ledger.get(int(result.payload, 16))
    assert entry.parameters["planner"] == "edit"  # stored with the video, to re-plan and re-render
    stored = ScenePlan.from_dict(entry.parameters["plan"])  # written compact: rounded to 1e-6
    assert np.allclose(stored.objects[0].track, result.plan.objects[0].track, atol=1e-6)


def test_extend_backward_runs_the_tracks_back(studio: Studio, tmp_path: Path) -> None:
    src, source_plan = _clip(tmp_path, "a small blue square moves slowly down on a gray background", start=(0.5, 0.5))
    result, frames = _make(studio, tmp_path, prompt="a blue square", edit="extend", sources=(src,), seconds=1,
                           params={"seconds": 1, "direction": "backward"})
    assert len(frames) == 8 + 16
    track = read_frames(frames, fps=FPS).plan.objects[0].track
    y = (track[:, 1] + track[:, 3]) / 2
    step = np.diff((source_plan.objects[0].track[:, 1] + source_plan.objects[0].track[:, 3]) / 2).mean()
    assert np.allclose(np.diff(y), step, atol=0.02)  # one straight move through the seam (±1 px per frame)


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_extending_a_clip_with_no_object_follows_the_prompt(studio: Studio, tmp_path: Path, direction: str) -> None:
    """A clip of an empty forest background, extended with a prompt naming a circle (and no
    background): the circle comes in (forwards) or leaves (backwards) in the new part, moving
    right as the prompt says, on the clip's forest background — never popping up or vanishing
    at the joint."""
    empty = np.empty((16, SIZE, SIZE, 3), np.uint8)
    empty[:] = (25, 70, 40)  # the world's forest
    src = tmp_path / "empty.mp4"
    write_video(src, empty, fps=FPS)
    result, frames = _make(studio, tmp_path, prompt="a medium red circle moves right", edit="extend", sources=(src,),
                           seconds=2, params={"seconds": 2, "direction": direction})
    assert any("the new part follows the prompt's plan" in w for w in result.warnings)
    kept = slice(0, 16) if direction == "forward" else slice(16, 32)
    new = slice(16, 32) if direction == "forward" else slice(0, 16)
    reading = read_frames(frames[new], fps=FPS)
    assert reading.plan is not None and reading.plan.background.colour == "forest"
    assert [o.phrase.split()[1:] for o in reading.plan.objects] == [["red", "circle"]]
    assert read_frames(frames[kept], fps=FPS).plan is None  # the kept clip stays empty
    x = _measured_x(frames[new], "red")
    assert np.diff(x).min() > -1e-6 and x[-1] - x[0] > 0.2  # rightwards
    edge = frames[new][0] if direction == "forward" else frames[new][-1]  # the new frame at the joint
    assert read_frames(edge[None], fps=FPS).plan is None  # nothing there yet (or any more)


def test_loop_ends_where_it_starts(studio: Studio, tmp_path: Path) -> None:
    src, _ = _clip(tmp_path, "a medium green triangle moves right on a black background")
    result, frames = _make(studio, tmp_path, prompt="a green triangle", edit="loop", sources=(src,), seconds=1, params={"bridge": 1})
    x = _measured_x(frames, "green")
    steps = np.abs(np.diff(np.concatenate([x, x[:1]])))  # the last frame back to the first too
    assert steps.max() <= 2 * np.median(steps)  # the bar's loop seam: no step over twice the usual, the wrap included


def test_remix_keeps_the_source_path_in_the_new_colour(studio: Studio, tmp_path: Path) -> None:
    src, source_plan = _clip(tmp_path, "a medium red circle moves right on a navy background")
    result, frames = _make(studio, tmp_path, prompt="a blue square on a forest background", edit="remix",
                           sources=(src,), seconds=2, params={"strength": 0.8})
    reading = read_frames(frames, fps=FPS).plan
    assert [o.phrase for o in reading.objects] == ["medium blue square"] and reading.background.colour == "forest"
    assert np.allclose(_centre_x(reading), _centre_x(source_plan), atol=0.02)


def test_image_to_video_moves_the_image_objects_as_the_prompt_says(studio: Studio, tmp_path: Path) -> None:
    still = plan_prompt("a large yellow circle stays still on a brown background", width=SIZE, height=SIZE, fps=FPS,
                        frames=1, seed=5)
    image = tmp_path / "still.png"
    write_image(image, render_plan(still)[0])
    result, frames = _make(studio, tmp_path, prompt="a yellow circle moves left", edit="image", sources=(image,),
                           seconds=2)
    x = _measured_x(frames, "yellow")
    assert abs(x[0] - _centre_x(still)[0]) < 0.01  # starts where the image has it
    assert np.all(np.diff(x) < 0)  # and moves left


def test_recut_keeps_the_kept_tracks_and_continues_them(studio: Studio, tmp_path: Path) -> None:
    src, source_plan = _clip(tmp_path, "a small white circle moves slowly right on a navy background", seconds=3, start=(0.1, 0.5))
    result, frames = _make(studio, tmp_path, prompt="a white circle", edit="recut", sources=(src,), seconds=3,
                           params={"ranges": [[1, 2]], "at": 1})
    x = _measured_x(frames, "white")
    assert np.allclose(x[8:16], _centre_x(source_plan)[8:16], atol=0.01)  # kept in place
    assert np.allclose(np.diff(x), np.diff(_centre_x(source_plan)).mean(), atol=0.01)  # one move throughout


def test_blend_join_carries_an_object_across(studio: Studio, tmp_path: Path) -> None:
    a, _ = _clip(tmp_path, "a small red circle moves right on a navy background", name="a.mp4", start=(0.2, 0.5))
    b, _ = _clip(tmp_path, "a small red circle moves left on a navy background", name="b.mp4", start=(0.8, 0.3))
    result, frames = _make(studio, tmp_path, prompt="a red circle", edit="blend", sources=(a, b), seconds=1,
                           params={"transition": 1})
    x = _measured_x(frames, "red")
    assert np.abs(np.diff(x)).max() < 0.08  # no jump: the bridge carries it from A's end to B's start


def test_a_blend_between_two_backgrounds_dissolves_across_the_bridge(studio: Studio, tmp_path: Path) -> None:
    """A on navy, B on forest: the background changes across the bridge in even steps, from
    navy to forest — no cut."""
    a, _ = _clip(tmp_path, "a small red circle moves right on a navy background", name="a.mp4", start=(0.2, 0.5))
    b, _ = _clip(tmp_path, "a small red circle moves right on a forest background", name="b.mp4", start=(0.6, 0.5))
    result, frames = _make(studio, tmp_path, prompt="a red circle", edit="blend", sources=(a, b), seconds=1,
                           params={"transition": 1})
    corner = frames[:, :8, :8].reshape(len(frames), -1, 3).mean(1)  # (T, 3): the background, away from the circle
    navy, forest = np.array([25, 35, 80]), np.array([25, 70, 40])
    assert np.abs(corner[15] - navy).max() < 4 and np.abs(corner[24] - forest).max() < 4  # A's last, B's first
    steps = np.diff(corner[15:25, 2])  # blue falls from navy's 80 to forest's 40 across the 8 bridge frames
    assert (steps < 0).all() and steps.min() > 2 * (40 - 80) / 9  # even steps, none over twice the mean
    assert result.plan is not None and result.plan.background.colour == "forest"


def test_a_blend_bridge_meets_both_clips_speeds() -> None:
    """A moves right; B, the same move further right, starts twice A's pace away over the
    bridge: the bridge leaves A and reaches B at their own pace (a straight bridge would jump
    to twice it at both joints), and makes up the distance in between."""
    a = plan_prompt("a red circle moves slowly right", width=SIZE, height=SIZE, fps=FPS, frames=16, seed=0)
    track = a.objects[0].track
    step = np.diff(_centre_x(a)).mean()
    shift = (15 + 2 * 9) * step  # B's start is 2 × 9 steps past A's end
    b = replace(a, objects=(replace(a.objects[0], boxes=tuple(map(tuple, (track + [shift, 0, shift, 0]).tolist()))),))
    x = _centre_x(joined(a, b, 8))
    assert abs(x[16] - x[15] - step) < 0.4 * step and abs(x[25] - x[24] - step) < 0.4 * step  # both joints (straight: 1 step off)
    assert (np.diff(x) > 0).all() and np.diff(x).max() < 3 * step  # forwards only, no dash


def test_a_bridge_never_turns_back() -> None:
    """B starts behind where A ends: the bridge goes straight back rather than carrying on in
    A's direction and turning round (faster through the middle than a straight bridge)."""
    a = plan_prompt("a red circle moves slowly right", width=SIZE, height=SIZE, fps=FPS, frames=16, seed=0)
    x = _centre_x(joined(a, a, 8))  # B (= A) starts where A started: left of A's end
    assert (np.diff(x[15:25]) < 0).all()
    assert np.abs(np.diff(x[15:25])).max() <= 1.5 * abs(x[24] - x[15]) / 9 + 1e-9  # an ease in and out at most


@pytest.mark.parametrize("pace", [0.1, 0.05], ids=["at-its-pace", "faster-than-its-pace"])
def test_a_loop_brings_a_departed_object_back_the_way_it_first_moved(pace: float) -> None:
    """A circle moving right leaves through the right edge: the loop's bridge brings it in from
    the left, still moving right, to its first box — not back across the canvas leftwards. At
    0.1 a frame its opening's motion run back leaves the canvas within the bridge; at 0.05 it
    does not, and the bridge brings it in faster, slowing to its pace."""
    plan = plan_prompt("a red circle moves right", width=SIZE, height=SIZE, fps=FPS, frames=16, seed=0)
    x = np.minimum(0.4 + pace * np.arange(16), 1.2)  # left edge: off the canvas from frame 6 (10)
    track = np.stack([x, np.full(16, 0.4), x + 0.2, np.full(16, 0.6)], axis=1)
    left = replace(plan, objects=(replace(plan.objects[0], boxes=tuple(map(tuple, track.tolist()))),))
    bridge = looped(left, 8).objects[0].track[16:]
    centre = (bridge[:, 0] + bridge[:, 2]) / 2
    assert bridge[0, 0] < 0  # coming in over the left edge
    assert (np.diff(np.concatenate([centre, [0.5]])) > 0).all()  # rightwards all the way, into the first box
    assert abs((0.5 - centre[-1]) - pace) < 0.4 * pace  # at the opening's own pace


def test_a_loop_takes_an_object_still_on_the_canvas_straight_back() -> None:
    plan = plan_prompt("a red circle moves right", width=SIZE, height=SIZE, fps=FPS, frames=16, seed=0)
    track = plan.objects[0].track
    bridge = looped(plan, 8).objects[0].track[16:]
    assert np.allclose(np.diff(bridge, axis=0), (track[0] - track[-1]) / 9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_bounce_continues_as_a_bounce(seed: int) -> None:
    """The first half of a world bounce, continued, follows the world's own second half (it
    rebounds rather than falling through the floor); the second half run back is higher with
    every earlier bounce, as the world's first half is."""
    whole = plan_prompt("a red circle bounces", width=SIZE, height=SIZE, fps=FPS, frames=40, seed=seed)
    height = lambda p: (p.objects[0].track[:, 1] + p.objects[0].track[:, 3]) / 2  # noqa: E731
    truth = height(whole)
    ahead = height(continued(window(whole, 0, 20), 20))
    assert np.abs(ahead - truth).max() < 0.1
    assert ahead[20:].min() < ahead[20:].max() - 0.2  # it rises again
    back = height(reversed_plan(continued(reversed_plan(window(whole, 20, 20)), 20, backwards=True)))
    assert np.abs(back - truth).max() < 0.12
    assert back[:20].min() < truth[20:].min()  # an earlier bounce went higher than any later one


def test_a_straight_move_is_not_taken_for_a_bounce() -> None:
    down = plan_prompt("a red circle moves down", width=SIZE, height=SIZE, fps=FPS, frames=16, seed=0)
    y = lambda p: (p.objects[0].track[:, 1] + p.objects[0].track[:, 3]) / 2  # noqa: E731
    assert np.allclose(np.diff(y(continued(down, 8))[15:]), np.diff(y(down)).mean(), atol=1e-3)


def test_mix_plans_both_prompts(studio: Studio, tmp_path: Path) -> None:
    result, frames = _make(studio, tmp_path, prompt="a red circle moves right", edit="blend", seconds=1,
                           params={"mode": "mix", "with": "a blue square moves left"})
    phrases = sorted(o.phrase.split(maxsplit=1)[1] for o in read_frames(frames, fps=FPS).plan.objects)
    assert phrases == ["blue square", "red circle"]


def test_a_users_plan_of_an_edit_is_drawn(studio: Studio, tmp_path: Path) -> None:
    src, source_plan = _clip(tmp_path, "a small red circle moves slowly right on a navy background", start=(0.2, 0.3))
    first, _ = _make(studio, tmp_path, prompt="a red circle", edit="extend", sources=(src,), params={"seconds": 1})
    plan = first.plan
    # drag the end of the new part down: the last keyframe's box moves by 0.3 of the height
    track = plan.objects[0].track.copy()
    track[16:, [1, 3]] += np.linspace(0, 0.3, 8)[:, None]
    edited = replace(plan, objects=(replace(plan.objects[0], boxes=tuple(map(tuple, track.tolist()))),))
    result, frames = _make(studio, tmp_path, prompt="a red circle", edit="extend", sources=(src,), params={"seconds": 1},
                           plan=edited)
    got = read_frames(frames, fps=FPS).plan.objects[0].track
    centre = lambda t: (t[:, :2] + t[:, 2:]) / 2  # noqa: E731
    assert np.abs(centre(got)[16:] - centre(track)[16:]).max() < 0.02
    assert np.allclose(result.plan.objects[0].track, track, atol=1e-6)  # the plan stored is the one drawn


def test_plan_helpers_keep_the_format_valid() -> None:
    plan = plan_prompt("a red circle moves right and a blue square moves left", width=64, height=64, fps=8, frames=8, seed=0)
    assert looped(plan, 4).frames == 12
    assert joined(plan, plan, 3).frames == 19
    assert window(plan, -3, 20).frames == 20  # held before and after


def test_storyboard_carries_an_object_across_cards(studio: Studio, tmp_path: Path) -> None:
    cards = [{"at": 0, "prompt": "a small red circle moves slowly right on a navy background"},
             {"at": 1.5, "prompt": "a small red circle moves slowly down on a navy background"}]
    result, frames = _make(studio, tmp_path, prompt=cards[0]["prompt"], edit="storyboard", seconds=3,
                           params={"cards": cards})
    track = read_frames(frames, fps=FPS).plan.objects[0].track
    centre = (track[:, :2] + track[:, 2:]) / 2
    steps = np.hypot(*np.diff(centre, axis=0).T)
    assert steps.max() <= 2 * np.median(steps)  # one object: no jump where the second card starts
    assert np.ptp(centre[:12, 0]) > 0.1 and np.ptp(centre[12:, 1]) > 0.1  # right, then down
    assert len(result.plan.objects) == 1


def test_each_window_of_a_long_video_continues_the_plan() -> None:
    from cinepatch import editing
    from cinepatch.backends.base import GenerationSpec
    from cinepatch.backends.world import WorldOracle

    plan = plan_prompt("a small red circle bounces and a blue square moves slowly left", width=64, height=64, fps=8,
                       frames=60, seed=1)
    spec = GenerationSpec(prompt="x", negative="", frames=60, width=64, height=64, fps=8, seed=0, steps=1,
                          guidance=1.0, plan=plan)
    made = editing.plan(None, spec, [], {}, window=17, latent_step=1)
    assert len(made.specs) == 2 and made.scene is plan
    frames = made.run(WorldOracle(), progress=lambda f: None)
    assert np.array_equal(frames, render_plan(plan))  # every window drew its part of the one plan


def test_a_backend_without_plans_edits_as_before_with_one_warning(studio: Studio, tmp_path: Path) -> None:
    from cinepatch.backends.world import WorldOracle

    class NoPlans(WorldOracle):  # the oracle's pixels, but no layout support (like a diffusers family)
        name = "no-plans"
        takes_plan = False

    studio._backends["no-plans"] = NoPlans()  # the Studio's cache of loaded backends
    src, _ = _clip(tmp_path, "a small red circle moves slowly right on a navy background", start=(0.2, 0.5))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        result = studio.create(VideoRequest(prompt="a red circle stays still", model="no-plans", fps=FPS, width=SIZE,
                                            height=SIZE, edit="extend", sources=(src,), params={"seconds": 1}),
                               out=tmp_path / "np.mp4")
    notes = [str(w.message) for w in seen if "scene plans" in str(w.message)]
    assert len(notes) == 1 and "does not read scene plans" in notes[0]
    assert result.plan is None and result.frames == 24


@pytest.mark.parametrize(("second", "cut"), [
    ("a small red circle moves slowly down on a navy background", False),  # the same background
    ("a small red circle moves slowly down", False),  # names none: keeps the one it continues
    ("a small red circle moves slowly down on a checkered gray background", True),  # another one
])
def test_a_storyboard_card_that_names_another_background_is_a_cut(second: str, cut: bool) -> None:
    from cinepatch import editing
    from cinepatch.backends.base import GenerationSpec

    oracle, asked = _recording_oracle()
    first = "a small red circle moves slowly right on a navy background"
    plan_text = lambda text, frames: plan_prompt(text, width=64, height=64, fps=FPS, frames=frames, seed=0)
    spec = GenerationSpec(prompt=first, negative="", frames=24, width=64, height=64, fps=FPS, seed=0, steps=1, guidance=1.0)
    cards = [{"at": 0, "prompt": first}, {"at": 1.5, "prompt": second}]
    made = editing.plan("storyboard", spec, [], {"cards": cards}, window=33, latent_step=1,
                        planning=editing.Planning(prompt=plan_text(first, 24), plan_text=plan_text))
    frames = made.run(oracle, progress=lambda f: None)
    assert len(frames) == 24 and len(asked) == 2
    assert asked[0].keyframes is None  # the first card starts the video
    assert (asked[1].keyframes is None) == cut  # a cut starts afresh; a continuation pins the card before's end
    assert asked[1].plan is not None and asked[1].plan.background.colour == ("gray" if cut else "navy")


def test_a_loop_bridge_is_planned_into_the_opening_it_pins() -> None:
    """The bridge pass pins the video's end at its start and the loop's opening at its end; its
    plan has each pinned frame's own boxes there — the opening's too, not the loop's last box held
    (a model told the object is still at the edge while the pinned frames show it moving on
    draws it twice)."""
    from cinepatch import editing
    from cinepatch.backends.base import GenerationSpec

    oracle, asked = _recording_oracle()
    prompt = "a medium red circle moves slowly right on a navy background"
    spec = GenerationSpec(prompt=prompt, negative="", frames=32, width=64, height=64, fps=FPS, seed=0, steps=1, guidance=1.0)
    made = editing.plan("loop", spec, [], {"bridge": 1}, window=33, latent_step=1,
                        planning=editing.Planning(prompt=plan_prompt(prompt, width=64, height=64, fps=FPS, frames=32, seed=0)))
    made.run(oracle, progress=lambda f: None)
    first, bridge = asked
    pins = bridge.keyframes.indices
    n = len(pins) // 2
    loop_track, bridge_track = made.scene.objects[0].track, bridge.plan.objects[0].track
    assert np.allclose(bridge_track[list(pins[:n])], loop_track[first.frames - n : first.frames])  # the video's end
    assert np.allclose(bridge_track[list(pins[n:])], loop_track[:n])  # the opening it leads into
