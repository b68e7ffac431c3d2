"""The world planner: the plan is exactly where the oracle draws the same (scene, seed)."""

from __future__ import annotations

import numpy as np
import pytest

from cinepatch.errors import InvalidParameter
from cinepatch.planning import ScenePlan, WorldPlanner, plan_from_scene, plan_prompt, render_plan
from cinepatch.planning.world import look_of
from cinepatch.world import parse_prompt, random_scene, render, render_with_mask
from cinepatch.world.scene import OBJECT_COLOURS, Scene, SceneObject

CANVAS = {"width": 96, "height": 64, "fps": 8, "frames": 24}


def _pixel_boxes(box: tuple[float, ...], width: int, height: int) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = box
    return x0 * width, y0 * height, x1 * width, y1 * height


@pytest.mark.parametrize(
    "prompt",
    [
        "a small red circle moves right",
        "a large blue square bounces",
        "a green triangle grows on a checkered gray background",
        "a white square enters from the left moving right quickly; the camera pans right",
        "a purple circle moves up and leaves",
    ],
)
def test_every_drawn_pixel_of_a_lone_object_lies_in_its_planned_box(prompt: str) -> None:
    scene = parse_prompt(prompt)
    plan = plan_from_scene(scene, **CANVAS, seed=5)
    _, mask = render_with_mask(scene, **CANVAS, seed=5)
    w, h = CANVAS["width"], CANVAS["height"]
    visible = 0
    for t in range(CANVAS["frames"]):
        x0, y0, x1, y1 = _pixel_boxes(plan.objects[0].boxes[t], w, h)
        # Fully covered pixels have their centres inside the box ...
        rows, cols = np.nonzero(mask[t] >= 1)
        assert np.all(cols + 0.5 > x0) and np.all(cols + 0.5 < x1) and np.all(rows + 0.5 > y0) and np.all(rows + 0.5 < y1), t
        # ... and any pixel the object touches at all is within its one-pixel anti-aliased edge.
        rows, cols = np.nonzero(mask[t] > 0)
        assert np.all(cols + 1.5 > x0) and np.all(cols - 0.5 < x1) and np.all(rows + 1.5 > y0) and np.all(rows - 0.5 < y1), t
        if len(rows) and 0 <= x0 and x1 <= w and 0 <= y0 and y1 <= h:
            # ... and the box is tight: the drawing reaches within a pixel of each edge.
            assert cols.min() <= x0 + 1 and cols.max() + 1 >= x1 - 1 and rows.max() + 1 >= y1 - 1, t
            visible += 1
    assert visible > 0


def test_every_object_of_a_busy_scene_is_drawn_inside_its_box_on_every_frame() -> None:
    scene = parse_prompt(
        "a red circle moves right behind the pillar, a small yellow square bounces and a large pink triangle "
        "moves down on a striped navy background; the camera pans left"
    )
    plan = plan_from_scene(scene, **CANVAS, seed=2)
    frames = render(scene, **CANVAS, seed=2)
    w, h = CANVAS["width"], CANVAS["height"]
    assert len(plan.objects) == 3 and len(plan.occluders) == 1 and plan.camera.pan == "left"
    for obj, planned in zip(scene.objects, plan.objects, strict=True):
        assert planned.phrase == f"{obj.size} {obj.colour} {obj.shape}"
        colour = np.array(OBJECT_COLOURS[obj.colour])
        for t in range(CANVAS["frames"]):
            rows, cols = np.nonzero(np.all(frames[t] == colour, axis=-1))  # fully covered pixels
            x0, y0, x1, y1 = _pixel_boxes(planned.boxes[t], w, h)
            assert np.all(cols + 0.5 > x0) and np.all(cols + 0.5 < x1), (obj.colour, t)
            assert np.all(rows + 0.5 > y0) and np.all(rows + 0.5 < y1), (obj.colour, t)


def test_the_oracle_draws_the_plan_of_a_scene_exactly_as_the_scene() -> None:
    rng = np.random.default_rng(7)
    for seed in range(40):
        scene = random_scene(rng)
        canvas = {"width": int(rng.choice([32, 64, 96])), "height": int(rng.choice([32, 48, 80])), "fps": 8, "frames": 13}
        plan = plan_from_scene(scene, **canvas, seed=seed)
        assert np.array_equal(render_plan(plan), render(scene, **canvas, seed=seed)), scene
        # Through YAML (boxes rounded to 1e-6 of the canvas) at most a rounding step differs.
        again = render_plan(ScenePlan.from_yaml(plan.to_yaml()))
        assert np.abs(again.astype(int) - render(scene, **canvas, seed=seed)).max() <= 1


def test_later_objects_are_nearer_and_the_pillar_is_an_occluder() -> None:
    plan = plan_prompt("a red circle moves left behind the pillar and a blue square stays still", **CANVAS, seed=0)
    assert plan is not None
    assert [o.depth for o in plan.objects] == [1, 0]
    x0, y0, x1, y1 = plan.occluders[0].box
    assert (y0, y1) == (0.0, 1.0) and x1 - x0 == pytest.approx(0.12) and (x0 + x1) / 2 == pytest.approx(0.5)


def test_objects_far_off_the_canvas_stay_within_the_format() -> None:
    # Own motion plus the pan carries the square far past the edge; the plan parks it outside.
    scene = Scene(objects=(SceneObject("white", "square", size="large", motion="right", speed="fast", exit="leaves"),),
                  pan="left")
    canvas = {"width": 64, "height": 64, "fps": 8, "frames": 48}
    plan = plan_from_scene(scene, **canvas, seed=0)
    track = plan.objects[0].track
    assert track.max() <= 1.5 and track[-1, 0] >= 1.0
    assert np.array_equal(render_plan(plan), render(scene, **canvas, seed=0))


def test_a_prompt_outside_the_world_has_no_plan_and_the_planner_says_why() -> None:
    assert plan_prompt("a portrait of a violinist", **CANVAS, seed=0) is None
    result = WorldPlanner().plan("a portrait of a violinist", **CANVAS, seed=0)
    assert result.plan is None and "names no object" in result.warnings[0]
    result = WorldPlanner().plan("a red circle", width=1024, height=64, fps=8, frames=24, seed=0)
    assert result.plan is None and "width=1024" in result.warnings[0]
    ok = WorldPlanner().plan("a red circle bounces", **CANVAS, seed=0)
    assert ok.plan is not None and ok.planner == "world" and ok.warnings == ()


def test_the_same_prompt_and_seed_plan_the_same_and_seeds_differ() -> None:
    a = plan_prompt("a red circle stays still", **CANVAS, seed=1)
    assert a == plan_prompt("a red circle stays still", **CANVAS, seed=1)
    assert a != plan_prompt("a red circle stays still", **CANVAS, seed=2)


def test_phrases_are_read_with_the_world_vocabulary() -> None:
    assert look_of("small red circle") == ("red", "circle")
    assert look_of("a crimson ball") == ("red", "circle")
    with pytest.raises(InvalidParameter, match="objects\\[1\\].phrase='a violin'.*one world object"):
        look_of("a violin", where="objects[1].phrase")
    with pytest.raises(InvalidParameter, match="names 2 objects"):
        look_of("two red circles")


def test_a_plans_description_reads_back_as_the_same_objects_and_background() -> None:
    prompt = ("a small red circle moves right behind the pillar and a large blue square bounces "
              "on a striped navy background; the camera pans left")  # fmt: skip
    plan = plan_prompt(prompt, **CANVAS, seed=0)
    assert plan is not None
    scene = parse_prompt(plan.describe())
    assert [f"{o.size} {o.colour} {o.shape}" for o in scene.objects] == [o.phrase for o in plan.objects]
    assert (scene.background.colour, scene.background.texture) == ("navy", "striped")
    assert scene.pillar is not None and scene.pan == "left"
