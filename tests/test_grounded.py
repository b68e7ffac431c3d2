"""Layout grounding: box maps, world layouts that match the renderer, a DiT that starts
unchanged and learns from the maps, and training and sampling with them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cinepatch.errors import InvalidParameter
from cinepatch.models.dit import DiT, DiTConfig
from cinepatch.pipeline import Pipeline
from cinepatch.planning.maps import BoxLayout, box_maps, latent_maps, scene_layout
from cinepatch.train import TrainConfig, apply_overrides, main
from cinepatch.world import parse_prompt, render_with_mask


def test_box_maps_cover_cells_by_area_and_place_cells_inside_the_box():
    occupancy, uv = box_maps(np.array([[[0.0, 0.0, 0.5, 1.0]]]), (4, 4))  # the left half
    assert occupancy.shape == (1, 1, 4, 4) and uv.shape == (1, 2, 1, 4, 4)
    assert np.array_equal(occupancy[0, 0], np.array([[1, 1, 0, 0]] * 4, dtype=np.float32))
    assert np.allclose(uv[0, 0, 0, 0, :2], [0.25, 0.75])  # u runs left → right inside the box
    assert np.allclose(uv[0, 1, 0, :, 0], [0.125, 0.375, 0.625, 0.875])  # v top → bottom

    partial, _ = box_maps(np.array([[[0.125, 0.0, 0.375, 0.25]]]), (4, 4))  # half of two cells
    assert np.allclose(partial[0, 0, 0], [0.5, 0.5, 0.0, 0.0])
    assert float(partial.sum()) == pytest.approx(0.25 * 0.25 * 16)  # the box's area in cells


def test_latent_maps_read_the_frame_each_latent_frame_ends_on():
    boxes = np.zeros((1, 9, 4), np.float32)
    boxes[0, :, 2:] = 0.25
    boxes[0, 8] = [0.75, 0.75, 1.0, 1.0]  # only the last pixel frame is elsewhere
    occupancy, _ = latent_maps(BoxLayout(("small red circle",), boxes), latent=(3, 4, 4), frame_step=4)
    assert occupancy[0, 0, 0, 0] == 1 and occupancy[0, 2, 3, 3] == 1 and occupancy[0, 2, 0, 0] == 0


def test_scene_layout_boxes_hold_every_rendered_object_pixel():
    scene = parse_prompt("a small red circle moves right and a large blue square bounces on a navy background")
    shape = dict(width=96, height=64, fps=8, frames=17)
    layout = scene_layout(scene, **shape, seed=3)
    assert layout.phrases == ("small red circle", "large blue square")
    _, mask = render_with_mask(scene, **shape, seed=3)  # (T, H, W): coverage of any object
    ys, xs = np.mgrid[0:64, 0:96]
    inside = np.zeros_like(mask, dtype=bool)
    for box in layout.boxes:  # (T, 4) normalised
        for t, (x0, y0, x1, y1) in enumerate(box):
            inside[t] |= (xs + 0.5 >= x0 * 96 - 1) & (xs + 0.5 <= x1 * 96 + 1) & (ys + 0.5 >= y0 * 64 - 1) & (ys + 0.5 <= y1 * 64 + 1)
    assert mask.max() > 0.9
    assert not np.any((mask > 0.05) & ~inside)  # no drawn pixel outside its plan (1 px anti-aliasing)


def _tiny_grounded() -> DiT:
    torch.manual_seed(0)
    return DiT(DiTConfig(4, (1, 2, 2), width=32, depth=2, heads=2, text_dim=16, layout_dim=8))


def _layout_inputs(b: int, frames: int = 2) -> dict[str, torch.Tensor]:
    occupancy, uv = box_maps(np.array([[[0.0, 0.0, 0.5, 0.5]] * frames]), (8, 8))
    return {
        "layout_occupancy": torch.from_numpy(occupancy)[None].expand(b, -1, -1, -1, -1),
        "layout_uv": torch.from_numpy(uv)[None].expand(b, -1, -1, -1, -1, -1),
        "layout_phrases": torch.randn(b, 1, 16),
    }


def test_a_grounded_dit_starts_as_its_text_only_self_and_learns_from_the_maps():
    model = _tiny_grounded()
    x, t, text = torch.randn(2, 4, 2, 8, 8), torch.tensor([0.3, 0.8]), torch.randn(2, 3, 16)
    model.final_layer.linear.weight.data.normal_(std=0.02)  # a trained model's output head
    plain = model(x, t, text_states=text)
    grounded = model(x, t, text_states=text, **_layout_inputs(2))
    assert torch.equal(plain, grounded)  # zero-initialised: the layout changes nothing yet

    loss = model(x, t, text_states=text, **_layout_inputs(2)).pow(2).mean()
    loss.backward()
    assert model.layout_embedder.weight.grad.abs().sum() > 0  # the maps get a gradient
    with torch.no_grad():
        model.layout_embedder.weight.add_(0.1 * torch.randn_like(model.layout_embedder.weight))
    moved = model(x, t, text_states=text, **_layout_inputs(2))
    assert not torch.allclose(moved, plain)
    zero = {k: torch.zeros_like(v) for k, v in _layout_inputs(2).items()}
    assert torch.allclose(model(x, t, text_states=text, **zero), plain, atol=1e-6)  # no boxes = text only


def test_a_text_only_dit_refuses_box_maps():
    model = DiT(DiTConfig(4, (1, 2, 2), width=32, depth=2, heads=2, text_dim=16))
    with pytest.raises(InvalidParameter, match="layout"):
        model(torch.randn(1, 4, 2, 8, 8), torch.tensor([0.5]), text_states=torch.randn(1, 3, 16), **_layout_inputs(1))


GROUNDED = [
    "data=world", "dit.width=32", "dit.depth=2", "dit.heads=2", "dit.layout_dim=8", "vae_preset=tiny",
    "buckets=32x32x1,32x32x5", "batch_size=4", "log_every=2", "ckpt_every=4", "sample_prompts=",
    "warmup_steps=1", "lr=2e-3", "min_lr=2e-3", "threads=1", "max_steps=4", "layout_dropout=0.5",
]


def test_training_with_layouts_runs_and_the_pipeline_samples_a_plan(tmp_path: Path):
    config = apply_overrides(TrainConfig(), [*GROUNDED, f"out_dir={tmp_path / 'run'}"])
    summary = main(config)
    assert np.isfinite(summary["loss"])
    pipe = Pipeline.from_pretrained(tmp_path / "run" / "pipeline")
    assert pipe.dit.config.layout_dim == 8
    scene = parse_prompt("a large red square stays still on a black background")
    layout = scene_layout(scene, width=32, height=32, fps=8, frames=5, seed=0)
    with torch.no_grad():
        pipe.dit.layout_embedder.weight.normal_(std=0.5)  # make the maps matter in a 4-step model
    kwargs = dict(frames=5, width=32, height=32, seed=1, steps=2, guidance=2.0, progress=False)
    planned = pipe.generate("a large red square", layouts=[layout], **kwargs)[0]
    again = pipe.generate("a large red square", layouts=[layout], **kwargs)[0]
    text_only = pipe.generate("a large red square", **kwargs)[0]
    assert planned.shape == (5, 32, 32, 3)
    assert np.array_equal(planned, again)  # deterministic per seed
    assert not np.array_equal(planned, text_only)  # the plan reaches the model


def test_layouts_are_checked_at_the_edge(tmp_path: Path):
    config = apply_overrides(TrainConfig(), [*GROUNDED[:4], *GROUNDED[5:], f"out_dir={tmp_path / 'plain'}", "max_steps=1"])
    main(config)
    pipe = Pipeline.from_pretrained(tmp_path / "plain" / "pipeline")
    layout = BoxLayout(("large red square",), np.array([[[0.1, 0.1, 0.5, 0.5]]] * 1).reshape(1, 1, 4))
    with pytest.raises(InvalidParameter, match="layout-grounded"):
        pipe.generate("x", frames=1, width=32, height=32, steps=1, layouts=[layout], progress=False)
    with pytest.raises(InvalidParameter, match="layout_dropout"):
        apply_overrides(TrainConfig(), ["layout_dropout=1.5"])
    with pytest.raises(InvalidParameter, match="layout.boxes"):
        BoxLayout(("a", "b"), np.zeros((1, 3, 4)))
