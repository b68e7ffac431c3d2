"""Layout grounding: plans on the latent grid, a DiT that starts unchanged and learns from
its box maps, and training and sampling with scene plans."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cinepatch.errors import InvalidParameter
from cinepatch.models.dit import DiT, DiTConfig
from cinepatch.pipeline import Pipeline, SamplerConfig, latent_layout, left_cells
from cinepatch.planning import rasterize
from cinepatch.planning.world import plan_from_scene
from cinepatch.train import TrainConfig, apply_overrides, main
from cinepatch.world import parse_prompt


def test_latent_layout_reads_the_frame_each_latent_frame_ends_on():
    scene = parse_prompt("a small red circle moves right on a black background")
    plan = plan_from_scene(scene, width=64, height=64, fps=8, frames=9, seed=0)
    layout = latent_layout(plan, (3, 4, 4), frame_step=4)  # latent frames end on pixel frames 0, 4, 8
    full = rasterize(plan, grid=(4, 4))
    assert layout.phrases == ("small red circle",)
    for j, frame in enumerate((0, 4, 8)):
        assert np.array_equal(layout.occupancy[0, j].numpy(), full.occupancy[0, frame])
        assert np.array_equal(layout.uv[0, :, j].numpy(), full.uv[0, :, frame])


def test_left_cells_are_the_frames_an_object_has_left_away_from_every_box():
    occupancy = torch.zeros(1, 3, 3, 6, 6)  # two objects and a padding entry, three latent frames
    occupancy[0, 0, :2, 0, 0] = 1.0  # the first leaves after frame 1
    occupancy[0, 1, :, 4, 4] = 1.0  # the second stays in the bottom-right corner
    left = left_cells(occupancy)
    assert left.shape == (1, 1, 3, 6, 6)
    assert left[0, 0, :2].sum() == 0  # nothing has left yet (padding entries never count)
    assert left[0, 0, 2, 3:, 3:].sum() == 0  # a cell around the box that stays is left alone
    assert left[0, 0, 2].sum() == 36 - 9


def test_plan_guidance_is_checked_where_a_model_folder_is_read():
    with pytest.raises(InvalidParameter, match="plan_guidance"):
        SamplerConfig(plan_guidance=-1)


def _tiny_grounded() -> DiT:
    torch.manual_seed(0)
    return DiT(DiTConfig(4, (1, 2, 2), width=32, depth=2, heads=2, text_dim=16, layout_dim=8))


def _layout_inputs(b: int, frames: int = 2) -> dict[str, torch.Tensor]:
    occupancy = torch.zeros(1, frames, 8, 8)
    occupancy[:, :, :4, :4] = 1.0  # one box over the top-left quarter
    uv = torch.rand(1, 2, frames, 8, 8)
    return {
        "layout_occupancy": occupancy[None].expand(b, -1, -1, -1, -1),
        "layout_uv": uv[None].expand(b, -1, -1, -1, -1, -1),
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


def test_a_cell_head_starts_at_zero_and_recut_adds_it_without_changing_the_output():
    from cinepatch.models.dit import recut

    model = _tiny_grounded()
    model.final_layer.linear.weight.data.normal_(std=0.02)
    model.layout_embedder.weight.data.normal_(std=0.02)  # a trained grounded model
    x, t, text, layout = torch.randn(2, 4, 2, 8, 8), torch.tensor([0.3, 0.8]), torch.randn(2, 3, 16), _layout_inputs(2)
    before = model(x, t, text_states=text, **layout)
    headed = recut(model, layout_head=16)
    assert headed.config.layout_head == 16
    assert torch.equal(headed(x, t, text_states=text, **layout), before)
    assert torch.equal(headed(x, t, text_states=text), model(x, t, text_states=text))  # text only too
    headed.train()
    headed(x, t, text_states=text, **layout).pow(2).mean().backward()
    assert headed.cell_head.mlp[-1].weight.grad.abs().sum() > 0
    with pytest.raises(InvalidParameter, match="layout_head"):
        DiTConfig(4, (1, 2, 2), width=32, depth=2, heads=2, text_dim=16, layout_head=8)  # no layout_dim


def test_a_cell_head_draws_inside_a_token_what_the_token_alone_cannot():
    """Inside one box of one token, the target is a disc: a function of each cell's place in the
    box. With the per-cell head the model fits it; the same model without the head, whose final
    linear paints a token's cells from the token alone, is worse at it (the box moves between
    samples, so the disc is not at fixed cells)."""
    torch.manual_seed(0)
    errors = {}
    for head in (0, 32):
        torch.manual_seed(0)
        model = DiT(DiTConfig(1, (1, 4, 4), width=32, depth=1, heads=2, text_dim=16, layout_dim=8,
                              layout_head=head, prediction="x"))
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
        rng = torch.Generator().manual_seed(1)
        for step in range(301):
            b = 16
            occupancy, uv, target = torch.zeros(b, 1, 1, 8, 8), torch.zeros(b, 1, 2, 1, 8, 8), torch.zeros(b, 1, 1, 8, 8)
            for i in range(b):
                y0, x0 = (int(v) for v in torch.randint(0, 3, (2,), generator=rng))
                occupancy[i, 0, 0, y0 : y0 + 6, x0 : x0 + 6] = 1
                v, u = torch.meshgrid(torch.arange(6) / 5, torch.arange(6) / 5, indexing="ij")
                uv[i, 0, :, 0, y0 : y0 + 6, x0 : x0 + 6] = torch.stack([u, v])
                target[i, 0, 0, y0 : y0 + 6, x0 : x0 + 6] = (((u - 0.5) ** 2 + (v - 0.5) ** 2) < 0.2).float()
            layout = {"layout_occupancy": occupancy, "layout_uv": uv, "layout_phrases": torch.ones(b, 1, 16)}
            t = torch.full((b,), 0.999)  # pure noise in: only the maps say where the disc is
            x_t = torch.randn(b, 1, 1, 8, 8, generator=rng)
            v = model(x_t, t, text_states=torch.zeros(b, 1, 16), **layout)
            x0_hat = x_t - t.view(-1, 1, 1, 1, 1) * v
            loss = (x0_hat - target).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        errors[head] = float(loss)
    assert errors[32] < 0.5 * errors[0], errors


def test_a_text_only_dit_refuses_box_maps():
    model = DiT(DiTConfig(4, (1, 2, 2), width=32, depth=2, heads=2, text_dim=16))
    with pytest.raises(InvalidParameter, match="layout"):
        model(torch.randn(1, 4, 2, 8, 8), torch.tensor([0.5]), text_states=torch.randn(1, 3, 16), **_layout_inputs(1))


TEXT_ONLY = [
    "data=world", "model=tiny", "dit.width=32", "dit.depth=2", "dit.heads=2", "vae_path=", "vae_preset=tiny",
    "buckets=32x32x1,32x32x5", "batch_size=4", "log_every=2", "ckpt_every=4", "sample_prompts=",
    "warmup_steps=1", "lr=2e-3", "min_lr=2e-3", "threads=1", "max_steps=4", "layout_dropout=0.5",
]
GROUNDED = [*TEXT_ONLY, "dit.layout_dim=8", "dit.layout_head=8"]


def test_training_with_layouts_runs_and_the_pipeline_samples_a_plan(tmp_path: Path):
    config = apply_overrides(TrainConfig(), [*GROUNDED, f"out_dir={tmp_path / 'run'}"])
    summary = main(config)
    assert np.isfinite(summary["loss"])
    pipe = Pipeline.from_pretrained(tmp_path / "run" / "pipeline")
    assert pipe.dit.config.layout_dim == 8
    scene = parse_prompt("a large red square stays still on a black background")
    plan = plan_from_scene(scene, width=32, height=32, fps=8, frames=5, seed=0)
    with torch.no_grad():
        pipe.dit.layout_embedder.weight.normal_(std=0.5)  # make the maps matter in a 4-step model
    kwargs = dict(frames=5, width=32, height=32, seed=1, steps=2, guidance=2.0, progress=False)
    planned = pipe.generate("a large red square", plans=[plan], **kwargs)[0]
    again = pipe.generate("a large red square", plans=[plan], **kwargs)[0]
    text_only = pipe.generate("a large red square", **kwargs)[0]
    assert planned.shape == (5, 32, 32, 3)
    assert np.array_equal(planned, again)  # deterministic per seed
    assert not np.array_equal(planned, text_only)  # the plan reaches the model

    # plan guidance: a third batch only where the plan takes an object off the canvas
    batches: list[int] = []
    pipe.dit.register_forward_pre_hook(lambda module, args: batches.append(args[0].shape[0]))
    leaving = plan_from_scene(parse_prompt("a small red square moves right quickly and leaves"),
                              width=32, height=32, fps=8, frames=5, seed=0)  # fmt: skip
    assert leaving.objects[0].track[-1, 0] >= 1  # off the canvas by the last frame
    pipe.generate("a small red square", plans=[leaving], **kwargs)
    assert batches == [3, 3]
    batches.clear()
    pipe.generate("a large red square", plans=[plan], **kwargs)  # it stays: no third batch
    assert batches == [2, 2]


def test_layouts_are_checked_at_the_edge(tmp_path: Path):
    config = apply_overrides(TrainConfig(), [*TEXT_ONLY, f"out_dir={tmp_path / 'plain'}", "max_steps=1"])
    main(config)
    pipe = Pipeline.from_pretrained(tmp_path / "plain" / "pipeline")
    plan = plan_from_scene(parse_prompt("a large red square"), width=32, height=32, fps=8, frames=1, seed=0)
    with pytest.raises(InvalidParameter, match="layout-grounded"):
        pipe.generate("x", frames=1, width=32, height=32, steps=1, plans=[plan], progress=False)
    with pytest.raises(InvalidParameter, match="plans"):
        pipe.generate(["x", "y"], frames=1, width=32, height=32, steps=1, plans=[None, None, None], progress=False)
    with pytest.raises(InvalidParameter, match="layout_dropout"):
        apply_overrides(TrainConfig(), ["layout_dropout=1.5"])


def test_the_studio_plans_for_a_grounded_model_and_records_the_plan(studio_config, tmp_path: Path):
    # The one request path: a layout-grounded model folder reads plans, so the app plans the
    # prompt with the world planner, the model gets the plan, and the ledger keeps it.
    from cinepatch.app import Studio, VideoRequest
    from cinepatch.backends.embedded import EmbeddedBackend
    from cinepatch.provenance.ledger import Ledger

    main(apply_overrides(TrainConfig(), [*GROUNDED, f"out_dir={tmp_path / 'run'}", "max_steps=1"]))
    folder = tmp_path / "run" / "pipeline"
    assert EmbeddedBackend.from_pretrained(folder).takes_plan
    studio_config.models["grounded"] = str(folder)
    studio = Studio(studio_config)
    request = dict(prompt="a large red square moves right on a black background", frames=5, width=32, height=32,
                   fps=8, model="grounded", seed=2, steps=2)
    result = studio.create(VideoRequest(**request), out=tmp_path / "planned.mp4")
    assert result.plan is not None and result.plan.objects[0].phrase == "large red square"
    assert result.plan.canvas.frames == 5
    outside = studio.create(VideoRequest(**{**request, "prompt": "a chef slices a tomato"}), out=tmp_path / "text.mp4")
    assert outside.path.exists() and outside.plan is None
    assert any("from the text alone" in w for w in outside.warnings)
    with Ledger(studio_config.ledger_path) as ledger:
        assert ledger.get(int(result.payload, 16)).parameters["planner"] == "world"
        assert ledger.get(int(result.payload, 16)).parameters["plan"] is not None
        assert ledger.get(int(outside.payload, 16)).parameters["plan"] is None
