"""The scene plan format: reading, keyframes, errors that name the field, round trips."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

from cinepatch.errors import InvalidParameter
from cinepatch.planning import ScenePlan, read_plan, write_plan


def plan_dict(**objects_override) -> dict:
    """A small valid plan: one circle keyframed left to right over 9 frames, and a pillar."""
    obj = {"phrase": "small red circle", "depth": 0,
           "keyframes": [{"frame": 0, "box": [0.0, 0.4, 0.2, 0.6]}, {"frame": 8, "box": [0.8, 0.4, 1.0, 0.6]}]}
    obj.update(objects_override)
    return {
        "version": 1,
        "canvas": {"width": 64, "height": 48, "fps": 8, "frames": 9},
        "background": {"colour": "navy", "texture": "striped"},
        "camera": {"pan": "left"},
        "objects": [obj],
        "occluders": [{"kind": "pillar", "box": [0.44, 0.0, 0.56, 1.0]}],
    }


def test_keyframes_are_interpolated_linearly_into_one_box_per_frame() -> None:
    plan = ScenePlan.from_dict(plan_dict())
    track = plan.objects[0].track
    assert track.shape == (9, 4)
    assert np.allclose(track[:, 0], np.linspace(0.0, 0.8, 9)) and np.allclose(track[:, 2] - track[:, 0], 0.2)
    assert plan.at(4) == [("small red circle", pytest.approx((0.4, 0.4, 0.6, 0.6)))]
    assert plan.background.texture == "striped" and plan.camera.pan == "left" and plan.occluders[0].kind == "pillar"


def test_keyframes_hold_before_the_first_and_after_the_last() -> None:
    data = plan_dict(keyframes=[{"frame": 2, "box": [0.1, 0.1, 0.3, 0.3]}, {"frame": 5, "box": [0.4, 0.1, 0.6, 0.3]}])
    track = ScenePlan.from_dict(data).objects[0].track
    assert np.allclose(track[:2, 0], 0.1) and np.allclose(track[5:, 0], 0.4) and track[3, 0] == pytest.approx(0.2)


def test_optional_sections_default_and_per_frame_boxes_are_read_as_they_are() -> None:
    boxes = [[0.1 * t, 0.2, 0.1 * t + 0.2, 0.4] for t in range(9)]
    data = plan_dict()
    del data["background"], data["camera"], data["occluders"]
    data["objects"] = [{"phrase": "large white square", "boxes": boxes}]
    plan = ScenePlan.from_dict(data)
    assert plan.background.colour == "black" and plan.background.texture is None and plan.camera.pan is None
    assert plan.objects[0].depth == 0 and np.allclose(plan.objects[0].track, boxes) and plan.occluders == ()


@pytest.mark.parametrize(
    ("mutate", "name", "allowed"),
    [
        (lambda d: d.update(colour_grading="warm"), "plan.colour_grading", "no such field"),
        (lambda d: d["objects"][0].update(mask="..."), "objects[0].mask", "no such field"),
        (lambda d: d["canvas"].update(fps=0), "canvas.fps", "from 1 to 60"),
        (lambda d: d["canvas"].update(width=100), "canvas.width", "multiple of 16"),
        (lambda d: d.update(version=2), "version", "1"),
        (lambda d: d["background"].update(colour="mauve"), "background.colour", "navy"),
        (lambda d: d["camera"].update(pan="up"), "camera.pan", "left"),
        (lambda d: d["objects"][0]["keyframes"][1].update(box=[0.8, 0.4, 1.7, 0.6]), "objects[0].keyframes[1].box", "-0.5 to 1.5"),
        (lambda d: d["objects"][0]["keyframes"][1].update(box=[0.8, 0.6, 1.0, 0.4]), "objects[0].keyframes[1].box", "y0 < y1"),
        (lambda d: d["objects"][0]["keyframes"][1].update(frame=0), "objects[0].keyframes[1].frame", "a frame after 0"),
        (lambda d: d["objects"][0]["keyframes"][1].update(frame=9), "objects[0].keyframes[1].frame", "0 to 8"),
        (lambda d: d["objects"][0].update(boxes=[[0, 0, 1, 1]]), "objects[0].boxes", "boxes or keyframes"),
        (lambda d: d["objects"][0].pop("keyframes"), "objects[0].boxes", "boxes or keyframes"),
        (lambda d: d["objects"][0].pop("phrase"), "objects[0].phrase", "required"),
        (lambda d: d["objects"][0].update(phrase=""), "objects[0].phrase", "non-empty"),
        (lambda d: d["objects"][0].update(depth=-1), "objects[0].depth", "0 to 99"),
        (lambda d: d.update(objects=d["objects"] * 4), "objects", "at most 3"),
        (lambda d: d.update(objects=[]), "objects", "1 to 3"),
        (lambda d: d.update(occluders=d["occluders"] * 2), "occluders", "at most 1"),
        (lambda d: d["occluders"][0].update(kind="wall"), "occluders[0].kind", "pillar"),
        (lambda d: d["occluders"][0].update(box=[0.4, 0.2, 0.5, 1.0]), "occluders[0].box", "y0 = 0"),
    ],
)
def test_bad_plans_name_the_field_and_what_is_allowed(mutate, name: str, allowed: str) -> None:
    data = copy.deepcopy(plan_dict())
    mutate(data)
    with pytest.raises(InvalidParameter) as info:
        ScenePlan.from_dict(data)
    assert info.value.name == name and allowed in str(info.value), str(info.value)


def test_per_frame_boxes_must_match_the_frame_count() -> None:
    data = plan_dict(keyframes=None)
    del data["objects"][0]["keyframes"]
    data["objects"][0]["boxes"] = [[0.1, 0.1, 0.3, 0.3]] * 5
    with pytest.raises(InvalidParameter, match=r"objects\[0\].boxes.*one per frame \(9\)"):
        ScenePlan.from_dict(data)


def test_an_object_off_the_canvas_on_every_frame_is_an_error_but_entering_is_fine() -> None:
    enters = plan_dict(keyframes=[{"frame": 0, "box": [-0.3, 0.4, -0.1, 0.6]}, {"frame": 8, "box": [0.4, 0.4, 0.6, 0.6]}])
    assert ScenePlan.from_dict(enters).objects[0].boxes[0][0] == -0.3
    never = plan_dict(keyframes=[{"frame": 0, "box": [1.1, 0.4, 1.3, 0.6]}, {"frame": 8, "box": [1.2, 0.4, 1.4, 0.6]}])
    with pytest.raises(InvalidParameter, match=r"objects\[0\].boxes.*touches the canvas"):
        ScenePlan.from_dict(never)


def test_yaml_round_trip_keeps_keyframes_and_is_a_fixed_point() -> None:
    plan = ScenePlan.from_dict(plan_dict())
    text = plan.to_yaml()
    assert "keyframes" in text and "boxes" not in text  # a straight track is written as its two ends
    again = ScenePlan.from_yaml(text)
    assert again == plan
    assert again.to_yaml() == text


def test_exact_round_trip_of_arbitrary_boxes() -> None:
    rng = np.random.default_rng(0)
    x = np.cumsum(rng.uniform(-0.05, 0.05, 9)) + 0.4
    data = plan_dict()
    data["objects"][0] = {"phrase": "blue triangle", "depth": 2,
                          "boxes": [[float(v), 0.3, float(v) + 0.25, 0.55] for v in x]}
    plan = ScenePlan.from_dict(data)
    assert ScenePlan.from_yaml(plan.to_yaml(compact=False)) == plan
    compact = ScenePlan.from_yaml(plan.to_yaml())
    assert np.abs(compact.objects[0].track - plan.objects[0].track).max() <= 1e-6


def test_json_is_read_too_and_unreadable_yaml_is_a_clear_error() -> None:
    import json

    assert ScenePlan.from_yaml(json.dumps(plan_dict())) == ScenePlan.from_dict(plan_dict())
    with pytest.raises(InvalidParameter, match="plan.*YAML"):
        ScenePlan.from_yaml("objects: [unclosed")
    with pytest.raises(InvalidParameter, match="plan="):
        ScenePlan.from_yaml("- just\n- a list\n")


def test_resampling_stretches_the_track_in_normalised_time() -> None:
    plan = ScenePlan.from_dict(plan_dict())
    longer = plan.resampled(frames=17, fps=16)
    assert (longer.canvas.frames, longer.canvas.fps) == (17, 16)
    assert np.allclose(longer.objects[0].track[:, 0], np.linspace(0.0, 0.8, 17))
    same_duration = plan.resampled(fps=16)  # fps alone keeps the duration
    assert same_duration.canvas.frames == 18 and same_duration.objects[0].track[-1, 0] == pytest.approx(0.8)
    still = plan.resampled(frames=1)
    assert still.objects[0].boxes == (plan.objects[0].boxes[0],)
    assert plan.resampled(frames=9) == plan
    with pytest.raises(InvalidParameter, match="frames"):
        plan.resampled(frames=0)


def test_at_checks_the_frame_and_describe_speaks_world_words() -> None:
    plan = ScenePlan.from_dict(plan_dict())
    with pytest.raises(InvalidParameter, match="frame=9"):
        plan.at(9)
    assert plan.describe() == "a small red circle on a striped navy background with a pillar; the camera pans left"


def test_plan_files_are_written_atomically_and_read_back(tmp_path: Path) -> None:
    plan = ScenePlan.from_dict(plan_dict())
    path = write_plan(plan, tmp_path / "plans" / "p.yaml")
    assert read_plan(path) == plan and [p.name for p in path.parent.iterdir()] == ["p.yaml"]
    path.write_text(path.read_text().replace("navy", "teal"))
    with pytest.raises(InvalidParameter, match=r"background.colour='teal'.*in .*p.yaml"):
        read_plan(path)
    with pytest.raises(InvalidParameter, match="plan="):
        read_plan(tmp_path / "missing.yaml")


def test_the_example_in_the_docs_is_a_valid_plan() -> None:
    import re

    text = (Path(__file__).parents[2] / "docs" / "plans.md").read_text()
    example = re.search(r"```yaml\n(.*?)```", text, re.DOTALL)
    assert example is not None
    plan = ScenePlan.from_yaml(example.group(1))
    assert [o.phrase for o in plan.objects] == ["small red circle", "large blue square"]
    assert plan.canvas.frames == 8 and plan.occluders[0].kind == "pillar" and plan.camera.pan == "left"
