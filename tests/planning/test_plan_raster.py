"""The rasteriser: exact box coverage and in-box positions on a grid, fast."""

from __future__ import annotations

import time

import numpy as np
import pytest

from cinepatch.errors import InvalidParameter
from cinepatch.planning import Canvas, Occluder, PlanObject, ScenePlan, plan_prompt, rasterize


def one_box(box, frames: int = 1, phrase: str = "red square") -> ScenePlan:
    return ScenePlan(canvas=Canvas(width=64, height=64, fps=8, frames=frames),
                     objects=(PlanObject(phrase=phrase, boxes=(tuple(box),) * frames),))


def test_a_box_over_the_left_half_fills_the_two_left_columns_of_a_4x4_grid() -> None:
    maps = rasterize(one_box((0.0, 0.0, 0.5, 1.0)), grid=(4, 4))
    assert maps.occupancy.shape == (1, 1, 4, 4) and maps.occupancy.dtype == np.float32
    expected = np.array([[1, 1, 0, 0]] * 4, np.float32)
    assert np.array_equal(maps.occupancy[0, 0], expected)
    assert maps.phrases == ("red square",)


def test_partial_cells_get_fractional_coverage() -> None:
    # x from 0.125 (half of column 0) to 0.5; y from 0 to 0.375 (half of row 1).
    occupancy = rasterize(one_box((0.125, 0.0, 0.5, 0.375)), grid=(4, 4)).occupancy[0, 0]
    expected = np.array(
        [[0.5, 1, 0, 0], [0.25, 0.5, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]], np.float32
    )
    assert np.allclose(occupancy, expected)
    # The covered area is the box's area, in cells.
    assert occupancy.sum() == pytest.approx(0.375 * 0.375 * 16)


def test_uv_increases_left_to_right_and_top_to_bottom_inside_the_box() -> None:
    uv = rasterize(one_box((0.0, 0.0, 1.0, 1.0)), grid=(4, 4)).uv
    assert uv.shape == (1, 2, 1, 4, 4)
    assert np.allclose(uv[0, 0, 0, 0], [0.125, 0.375, 0.625, 0.875])  # u along a row
    assert np.allclose(uv[0, 1, 0, :, 0], [0.125, 0.375, 0.625, 0.875])  # v down a column
    assert np.allclose(uv[0, 0, 0, :, 2], 0.625)  # u is the same on every row
    clipped = rasterize(one_box((0.25, 0.25, 0.75, 0.75)), grid=(4, 4)).uv
    assert clipped.min() == 0.0 and clipped.max() == 1.0  # cells outside the box clip to its edges


def test_boxes_past_the_edge_cover_only_what_is_on_the_canvas() -> None:
    occupancy = rasterize(one_box((-0.25, 0.0, 0.25, 1.0)), grid=(2, 2)).occupancy[0, 0]
    assert np.allclose(occupancy, [[0.5, 0.0], [0.5, 0.0]])


def test_a_world_plan_rasterises_every_object_and_frame_fast() -> None:
    plan = plan_prompt("a red circle moves right, a blue square bounces and a green triangle grows",
                       width=128, height=128, fps=16, frames=33, seed=0)
    assert plan is not None
    maps = rasterize(plan, grid=(16, 16))
    assert maps.occupancy.shape == (3, 33, 16, 16) and maps.uv.shape == (3, 2, 33, 16, 16)
    assert maps.phrases == ("medium red circle", "medium blue square", "medium green triangle")
    assert 0 <= maps.occupancy.min() and maps.occupancy.max() <= 1 and 0 <= maps.uv.min() and maps.uv.max() <= 1
    # Coverage sums to each box's on-canvas area in cells, on every frame.
    boxes = np.stack([o.track for o in plan.objects]).clip(0, 1)
    area = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1]) * 256
    assert np.allclose(maps.occupancy.sum(axis=(2, 3)), area, atol=1e-3)
    # The circle moves right: its coverage's centre of mass moves right.
    cols = (maps.occupancy[0].sum(axis=1) * np.arange(16)).sum(axis=1) / maps.occupancy[0].sum(axis=(1, 2))
    assert np.all(np.diff(cols) > 0)
    start = time.perf_counter()
    for _ in range(20):
        rasterize(plan, grid=(16, 16))
    assert (time.perf_counter() - start) / 20 < 0.005


def test_a_pillar_is_an_entry_of_its_own_and_cuts_the_objects_behind_it() -> None:
    # A box over the left half; a pillar over columns 1..2 of 4 stands in front of it.
    plan = ScenePlan(canvas=Canvas(width=64, height=64, fps=8, frames=1),
                     objects=(PlanObject(phrase="red square", boxes=((0.0, 0.0, 0.5, 1.0),)),),
                     occluders=(Occluder(box=(0.375, 0.0, 0.625, 1.0)),))
    maps = rasterize(plan, grid=(4, 4))
    assert maps.phrases == ("red square", "a pillar")
    assert np.allclose(maps.occupancy[0, 0], [[1, 0.5, 0, 0]] * 4)  # only what the pillar leaves
    assert np.allclose(maps.occupancy[1, 0], [[0, 0.5, 0.5, 0]] * 4)
    assert np.allclose(maps.uv[0, 0, 0, 0], [0.25, 0.75, 1.0, 1.0])  # uv still spans the whole box
    # Behind it on every frame, an object leaves nothing.
    hidden = ScenePlan(canvas=plan.canvas, objects=(PlanObject(phrase="red square", boxes=((0.4, 0.2, 0.6, 0.4),)),),
                       occluders=plan.occluders)
    assert rasterize(hidden, grid=(8, 8)).occupancy[0].max() == 0


def test_a_world_plan_with_a_pillar_carries_it_on_every_frame() -> None:
    plan = plan_prompt("a red circle moves right and passes behind the pillar", width=128, height=128, fps=8,
                       frames=32, seed=0)
    assert plan is not None and plan.occluders
    maps = rasterize(plan, grid=(32, 32))
    pillar = maps.occupancy[1]
    assert maps.phrases[-1] == "a pillar" and np.allclose(pillar, pillar[0])  # it stands still
    # The circle is never where the pillar fully covers a cell, and shows again past it.
    assert (maps.occupancy[0][:, pillar[0] == 1.0] == 0).all()
    assert maps.occupancy[0, 0].sum() > 0 and maps.occupancy[0, 20].sum() > 0


@pytest.mark.parametrize("grid", [(0, 4), (4,), [4, 4], (4.0, 4), (True, 4)])
def test_a_bad_grid_is_a_clear_error(grid) -> None:
    with pytest.raises(InvalidParameter, match="grid"):
        rasterize(one_box((0, 0, 1, 1)), grid=grid)
