"""Scene plans: boxes over time between a prompt and pixels, and the planners that write them.

::

    schema.py  ScenePlan (canvas, background, camera, objects with box tracks, occluders);
               strict YAML/JSON reading, keyframes, resampling — the format of docs/plans.md
    world.py   WorldPlanner / plan_prompt / plan_from_scene (the world's own layout, offline);
               render_plan (the world oracle's drawing of a plan)
    chat.py    ChatPlanner (an OpenAI-compatible endpoint; falls back to the world planner)
    raster.py  rasterize(plan, grid=(h, w)) -> LayoutMaps, what a layout-grounded model reads

Every planner has ``plan(prompt, *, width, height, fps, frames, seed) -> PlanResult``.
"""

from __future__ import annotations

from cinepatch.planning.chat import ChatPlanner
from cinepatch.planning.raster import LayoutMaps, rasterize
from cinepatch.planning.schema import (
    Box,
    Camera,
    Canvas,
    Occluder,
    PlanBackground,
    PlanObject,
    ScenePlan,
    read_plan,
    write_plan,
)
from cinepatch.planning.world import PlanResult, WorldPlanner, plan_from_scene, plan_prompt, render_plan

__all__ = [
    "ScenePlan",
    "Canvas",
    "PlanBackground",
    "Camera",
    "PlanObject",
    "Occluder",
    "Box",
    "read_plan",
    "write_plan",
    "PlanResult",
    "WorldPlanner",
    "ChatPlanner",
    "plan_prompt",
    "plan_from_scene",
    "render_plan",
    "LayoutMaps",
    "rasterize",
]
