"""train.py: the default recipe, config overrides, schedules, the loss that trains, loss
falling, exact resume (also after kill -9), and a 2-process gloo torchrun whose gradients
equal a 1-process run on the same batch."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from cinepatch.cli import main as cli_main
from cinepatch.errors import InvalidParameter
from cinepatch.models.dit import PRESETS, DiTConfig
from cinepatch import flow
from cinepatch.train import (
    COND_KINDS,
    Latents,
    TrainConfig,
    apply_overrides,
    build_models,
    cell_weights,
    draw_cond_mask,
    lr_at,
    main,
    make_batch,
    setup_ranks,
    train_step,
)

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "src" / "cinepatch" / "weights" / "default"  # the default model the package ships
sys.path.insert(0, str(Path(__file__).parent / "data"))
from test_data import make_clips  # noqa: E402

TINY = [
    "model=tiny", "dit.width=32", "dit.depth=2", "dit.heads=2", "vae_path=", "vae_preset=tiny", "buckets=32x32x9,32x32x1",
    "batch_size=4", "log_every=2", "ckpt_every=4", "sample_prompts=", "latent_cache=4",
    "warmup_steps=2", "lr=2e-3", "min_lr=2e-3", "cond_prob=0.5", "caption_dropout=0.25", "threads=1",
]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    return make_clips(tmp_path_factory.mktemp("clips") / "clips")


def tiny(out: Path, clips: Path, *extra: str) -> TrainConfig:
    return apply_overrides(TrainConfig(), [*TINY, f"data={clips}", f"out_dir={out}", *extra])


def state(out: Path) -> dict:
    return torch.load(out / "checkpoint" / "state.pt", map_location="cpu", weights_only=False)


def assert_same_tensors(a, b, *, exact: bool = True, rel: float = 0.0) -> None:
    """Equal tensors everywhere in two nested states; or, with ``exact=False``, equal up to
    float32 summation order: ``max|a − b| ≤ rel · max|a|`` per tensor."""
    if isinstance(a, torch.Tensor):
        if exact:
            assert torch.equal(a, b)
        else:
            assert float((a - b).abs().max()) <= rel * float(a.abs().max()) + 1e-12
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_same_tensors(a[k], b[k], exact=exact, rel=rel)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same_tensors(x, y, exact=exact, rel=rel)
    else:
        assert a == b


def test_overrides_are_typed_and_unknown_keys_fail():
    cfg = apply_overrides(TrainConfig(), ["max_steps=7", "lr=1e-3", "resume=false", "buckets=32x32x1,48x32x9",
                                          "dit.depth=3", "vae.latent_channels=4", "text_encoder={\"kind\": \"minilm\"}"])
    assert (cfg.max_steps, cfg.lr, cfg.resume, cfg.buckets) == (7, 1e-3, False, ("32x32x1", "48x32x9"))
    assert cfg.dit == {"depth": 3} and cfg.vae == {"latent_channels": 4}
    with pytest.raises(InvalidParameter, match="max_stepz"):
        apply_overrides(TrainConfig(), ["max_stepz=3"])
    with pytest.raises(InvalidParameter):
        apply_overrides(TrainConfig(), ["max_steps=many"])
    with pytest.raises(InvalidParameter):
        apply_overrides(TrainConfig(), ["parallel=horovod"])
    assert cli_main(["train", "--set", "bogus=1"]) == 2  # one line on stderr, exit 2


def test_the_default_config_is_the_shipped_recipe(capsys):
    # `cinepatch train --data world` with no overrides trains what the shipped default model's
    # last stage (short clips) was trained with. Left out are the keys that say where, how long
    # and on what machine a run went, not how it trains: out_dir (its folder), seed (which draw
    # of the same recipe), resume (whether to continue a folder), max_steps (when the run was
    # stopped), init_from (the stills stage it started from: docs/default_model.md), threads
    # (the cores of the machine it ran on; 0 takes them all) and sample_prompts (what it drew
    # for a look at the end). The DiT is compared by the shape it resolves to (the shipped run
    # named the tiny preset with overrides, the default names the world preset), with the
    # latent channels and text width the VAE and text encoder set.
    run_specific = {"out_dir", "seed", "resume", "max_steps", "init_from", "threads", "sample_prompts"}
    folder = json.loads((SHIPPED / "config.json").read_text())
    shipped = folder["training"]["config"]
    assert cli_main(["train", "--data", "world", "--print-config"]) == 0
    default = json.loads(capsys.readouterr().out)
    assert set(default) == set(shipped)
    model = DiTConfig.from_dict(folder["dit"])
    for config in (default, shipped):
        dit = {k: tuple(v) if isinstance(v, list) else v for k, v in config["dit"].items()}
        resolved = dataclasses.replace(PRESETS[config["model"]], **dit, in_channels=model.in_channels,
                                       text_dim=model.text_dim)
        assert resolved == model
    same_shape = {"model", "dit"}
    differ = {k: (default[k], shipped[k]) for k in set(shipped) - run_specific - same_shape if default[k] != shipped[k]}
    assert not differ


def test_the_trainer_loss_is_flow_loss_even_with_nan_on_given_frames(tmp_path):
    # The step's loss is flow_loss on the batch the trainer drew — cell weights, conditioning
    # and all — and a non-finite prediction on a conditioned frame neither reaches the loss
    # nor the weights.
    config = apply_overrides(TrainConfig(), [*TINY, "data=world", "buckets=32x32x9", "latent_cache=0", "cond_prob=1",
                                             "batch_size=2", f"out_dir={tmp_path}"])
    ranks = setup_ranks(config)
    models = build_models(config, ranks)
    latents = Latents(config, ranks, models)
    batch = make_batch(config, 0, latents.stream.plan(0), latents, models.text_encoder)
    assert batch.weight is not None and float(batch.weight.max()) > 1  # object weighting is on
    assert bool((batch.cond_mask.sum(1) > 0).all())  # every clip has a given frame

    class NaNOnGivenFrames(torch.nn.Module):
        def __init__(self, dit):
            super().__init__()
            self.dit = dit

        def forward(self, x, t, *, cond_mask, **inputs):
            v = self.dit(x, t, cond_mask=cond_mask, **inputs)
            return torch.where(cond_mask[:, None, :, None, None] > 0, float("nan"), v)

    models.dit.final_layer.linear.weight.data.normal_(0, 0.1)  # a prediction that is not all zero
    models.wrapped = NaNOnGivenFrames(models.dit)
    keep = batch.cond_mask[:, None, :, None, None]
    with torch.no_grad():
        expected = flow.flow_loss(
            models.wrapped, batch.x0, text=batch.inputs, cond_mask=batch.cond_mask, cond_latents=batch.x0 * keep,
            weight=batch.weight, t=batch.t, noise=batch.noise,
        )
        # The same number written out: per clip, the weighted mean over its free cells.
        t_ = batch.t.view(-1, 1, 1, 1, 1)
        x_t = keep * batch.x0 + (1 - keep) * ((1 - t_) * batch.x0 + t_ * batch.noise)
        v = models.dit(x_t, batch.t, cond_mask=batch.cond_mask, cond_latents=batch.x0 * keep, **batch.inputs)
        w = ((1 - keep) * batch.weight[:, None]).expand_as(v)
        sq = torch.where(w > 0, (v - (batch.noise - batch.x0)) ** 2 * w, 0.0)
        by_hand = (sq.flatten(1).sum(1) / w.flatten(1).sum(1)).mean()
    loss = train_step(models, batch, config)
    assert np.isfinite(loss) and loss == pytest.approx(float(expected), rel=1e-6)
    assert float(expected) == pytest.approx(float(by_hand), rel=1e-5)
    assert all(bool(torch.isfinite(p).all()) for p in models.dit.parameters())


def test_a_grounded_dit_gets_each_clips_box_maps_and_dropped_clips_get_none(tmp_path):
    # make_batch puts each clip's scene plan, as box maps, beside the prompt; a clip whose
    # caption or plan is dropped gets all-zero occupancy; train_step hands them to the model.
    config = apply_overrides(TrainConfig(), [*TINY, "data=world", "buckets=32x32x9", "latent_cache=0", "batch_size=4",
                                             "dit.layout_dim=4", "layout_dropout=0.5", f"out_dir={tmp_path}"])
    ranks = setup_ranks(config)
    models = build_models(config, ranks)
    latents = Latents(config, ranks, models)
    batches = [make_batch(config, step, latents.stream.plan(step), latents, models.text_encoder) for step in range(4)]
    occupied = [float(occ.sum()) > 0 for b in batches for occ in b.inputs["layout_occupancy"]]
    assert batches[0].inputs["layout_occupancy"].shape[2:] == batches[0].x0.shape[2:]  # (b, N, t, h, w)
    assert any(occupied) and not all(occupied)  # some plans kept, some dropped
    seen = []

    class Spy(torch.nn.Module):
        def __init__(self, dit):
            super().__init__()
            self.dit = dit

        def forward(self, x, t, **inputs):
            seen.append(inputs["layout_occupancy"])
            return self.dit(x, t, **inputs)

    models.wrapped = Spy(models.dit)
    train_step(models, batches[0], config)
    assert len(seen) == 1 and torch.equal(seen[0], batches[0].inputs["layout_occupancy"])


def test_clips_are_held_to_whole_temporal_patches_before_noise(tmp_path):
    # With 2-frame patches a still trains as a held two-frame clip and a 9-frame clip as 10
    # frames (3 latent frames → 4): the held copy has its own noise and is in the loss.
    config = apply_overrides(TrainConfig(), [*TINY, "data=world", "buckets=32x32x9,32x32x1", "latent_cache=0",
                                             "dit.patch=[2,2,2]", "dit.layout_dim=4", "object_weight=2",
                                             f"out_dir={tmp_path}"])
    ranks = setup_ranks(config)
    models = build_models(config, ranks)
    latents = Latents(config, ranks, models)
    lengths = set()
    for step in range(6):
        plan = latents.stream.plan(step)
        clips = latents.get(plan)
        for clip in clips:
            t = clip.latent.shape[1]
            lengths.add(t)
            assert t % 2 == 0 and torch.equal(clip.latent[:, -1], clip.latent[:, -2])
            assert torch.equal(clip.weight[-1], clip.weight[-2]) and clip.weight.shape[0] == t
            assert clip.layout.occupancy.shape[1] == t
        batch = make_batch(config, step, plan, latents, models.text_encoder)
        assert not torch.equal(batch.noise[:, :, -1], batch.noise[:, :, -2])
    assert lengths == {2, 4}  # stills and clips


def test_lr_schedule_and_conditioning_masks():
    cfg = TrainConfig(lr=1.0, min_lr=0.1, warmup_steps=10, max_steps=110)
    assert lr_at(0, cfg) == pytest.approx(0.1) and lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(60, cfg) == pytest.approx(0.55) and lr_at(110, cfg) == pytest.approx(0.1)
    rng = np.random.default_rng(0)
    kinds = {}
    for _ in range(2000):
        kind, mask = draw_cond_mask(5, rng, 0.5)
        kinds[kind] = kinds.get(kind, 0) + 1
        assert 0 <= mask.sum() < 5  # never every frame: there is always something to learn
        if kind == "first":
            assert mask.tolist() == [1, 0, 0, 0, 0]
        if kind == "trailing":
            assert mask[-1] == 1 and mask[0] == 0
        if kind == "middle":
            assert mask.sum() == 1 and mask[0] == 0 and mask[-1] == 0
        if kind == "both_ends":
            assert mask[0] == 1 and mask[-1] == 1 and 0 in mask
    assert set(kinds) == {"none", *COND_KINDS} and 800 < kinds["none"] < 1200
    assert draw_cond_mask(1, rng, 1.0)[0] == "none"  # an image has nothing to condition on


def test_loss_falls_on_a_trivial_dataset(clips, tmp_path):
    out = tmp_path / "run"
    summary = main(tiny(out, clips, "max_steps=40", "cond_prob=0", "caption_dropout=0", "ckpt_every=40",
                        "sample_prompts=a red square moves right", "sample_steps=2"))
    losses = [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 20 and summary["step"] == 40
    first, last = np.mean(losses[:4]), np.mean(losses[-4:])
    assert last < 0.6 * first, losses
    record = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["samples_per_s"] > 0 and record["mfu"] > 0
    assert (out / "samples" / "step0000040_0.mp4").is_file() and (out / "samples" / "step0000040_0.png").is_file()
    from cinepatch.pipeline import Pipeline

    pipe = Pipeline.from_pretrained(out / "pipeline")  # the run's model folder loads on its own
    assert pipe.metadata["training"]["step"] == 40


def test_init_from_starts_a_run_from_another_runs_dit(clips, tmp_path):
    from safetensors.torch import load_file

    main(tiny(tmp_path / "a", clips, "max_steps=4"))
    source = load_file(str(tmp_path / "a" / "pipeline" / "dit.safetensors"))
    main(tiny(tmp_path / "b", clips, "max_steps=1", f"init_from={tmp_path / 'a' / 'pipeline'}", "lr=1e-12", "min_lr=1e-12",
              "timestep_shift=5"))
    same = load_file(str(tmp_path / "b" / "pipeline" / "dit.safetensors"))
    assert all(torch.allclose(same[k], source[k], atol=1e-6) for k in ("blocks.0.attn.qkv.weight", "x_embedder.weight"))
    # A run's model samples at the noise levels it trained on.
    from cinepatch.pipeline import Pipeline

    shifts = [Pipeline.from_pretrained(tmp_path / run / "pipeline").sampler.shift for run in "ab"]
    assert shifts == [TrainConfig().timestep_shift, 5.0]
    # Another shape is refused, naming the option and the command that re-cuts a folder …
    with pytest.raises(InvalidParameter, match="init_from"):
        main(tiny(tmp_path / "c", clips, "max_steps=1", f"init_from={tmp_path / 'a' / 'pipeline'}", "dit.patch=[1,1,1]"))
    # … and a folder re-cut by it starts that run: the body as trained, the patches re-cut.
    assert cli_main(["model", "recut", str(tmp_path / "a"), "--out", str(tmp_path / "a111"), "--patch", "1,1,1",
                     "--prediction", "x"]) == 0
    main(tiny(tmp_path / "c", clips, "max_steps=1", f"init_from={tmp_path / 'a111'}", "dit.patch=[1,1,1]",
              "dit.prediction=x", "lr=1e-12", "min_lr=1e-12"))
    recut = load_file(str(tmp_path / "c" / "pipeline" / "dit.safetensors"))
    assert torch.allclose(recut["blocks.0.attn.qkv.weight"], source["blocks.0.attn.qkv.weight"], atol=1e-6)
    assert recut["x_embedder.weight"].shape[1] * 4 == source["x_embedder.weight"].shape[1]  # 1×1×1 vs 1×2×2 patches
    assert float(recut["final_layer.linear.weight"].abs().max()) < 1e-6 < float(source["final_layer.linear.weight"].abs().max())


def test_resume_continues_with_identical_state_even_after_kill_9(clips, tmp_path):
    # A run killed with SIGKILL mid-step after a checkpoint, then resumed to `target` steps, must
    # end bit-identical (weights, EMA, optimizer) to a straight run of `target` steps. The target
    # is set from where the kill landed, so the test does not depend on the machine's speed.
    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "cinepatch.train", "--set", *TINY, f"data={clips}", f"out_dir={killed}",
           "max_steps=100000", "ckpt_every=3"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (killed / "checkpoint" / "state.pt").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint written"
            time.sleep(0.05)
        time.sleep(0.3)  # let it run past the checkpoint, mid-step
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    at = state(killed)["step"]
    assert at >= 3 and at % 3 == 0
    target = at + 6
    straight = tmp_path / "straight"
    main(tiny(straight, clips, f"max_steps={target}", "ckpt_every=3"))
    main(tiny(killed, clips, f"max_steps={target}", "ckpt_every=3"))
    a, b = state(straight), state(killed)
    assert b["step"] == target
    for key in ("model", "ema", "optimizer"):
        assert_same_tensors(a[key], b[key])
    steps = [json.loads(line)["step"] for line in (killed / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == target  # nothing logged twice after the kill


def test_torchrun_two_gloo_ranks_match_one_process(clips, tmp_path):
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    assert torchrun, "torchrun not found beside the interpreter"
    one, two = tmp_path / "one", tmp_path / "two"
    main(tiny(one, clips, "max_steps=3", "ckpt_every=3", "grad_clip=0"))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "cinepatch.train", "--set", *TINY,
         f"data={clips}", f"out_dir={two}", "max_steps=3", "ckpt_every=3", "grad_clip=0"],
        env=env, capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "world size 2" in result.stdout
    a, b = state(one), state(two)
    assert b["step"] == 3 and len(b["rng"]) == 2
    # Adam's first moment is (1 − β1)·Σ β1^k g_k: equal moments mean equal gradients each step.
    exp_avg = [s["exp_avg"] for s in a["optimizer"]["state"].values()]
    assert sum(float(m.abs().sum()) for m in exp_avg) > 0
    # Measured: they agree to ~6e-6 of each tensor's scale (summation order); half the batch,
    # or a loss normalised per rank instead of per clip, would be off by tens of percent.
    assert_same_tensors(a["optimizer"]["state"], b["optimizer"]["state"], exact=False, rel=1e-4)
    # Weights: Adam divides by sqrt(v), so where a gradient is ~0 summation-order noise moves the
    # update by a visible share of one step; compare against the total step length (lr · steps).
    lr, steps = 2e-3, 3
    for name, tensor in a["model"].items():
        assert float((tensor - b["model"][name]).abs().max()) <= 0.01 * lr * steps, name


@pytest.mark.slow
def test_torchrun_fsdp_matches_one_process_and_resumes(clips, tmp_path):
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    one, two = tmp_path / "one", tmp_path / "two"
    main(tiny(one, clips, "max_steps=4", "grad_clip=0"))
    cmd = [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "cinepatch.train", "--set", *TINY,
           f"data={clips}", f"out_dir={two}", "grad_clip=0", "parallel=fsdp"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for steps in (2, 4):  # the second run resumes the sharded model and optimizer
        result = subprocess.run([*cmd, f"max_steps={steps}"], env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-4000:]
    assert "resumed" in result.stdout
    a, b = state(one), state(two)
    assert b["step"] == 4
    assert_same_tensors(a["model"], b["model"], exact=False, rel=1e-3)
    assert_same_tensors(a["ema"]["model"], b["ema"]["model"], exact=False, rel=1e-3)


def test_object_weight_counts_the_cells_an_object_covers_more():
    from cinepatch.data.buckets import parse_bucket
    from cinepatch.data.world import WorldSource

    bucket = parse_bucket("64x64x9")
    clip = WorldSource([bucket], fps=8, focus=True).get(bucket, 3)
    plain = WorldSource([bucket], fps=8).get(bucket, 3)
    assert torch.equal(clip.video, plain.video) and plain.focus is None and clip.focus.shape == (9, 64, 64)
    weights = cell_weights(clip.focus, (9, 16, 16), 4.0)  # the world VAE: 4× in space
    covered = torch.nn.functional.max_pool3d(clip.focus[None], (1, 4, 4))[0]  # (9, 16, 16)
    assert torch.allclose(weights, 1 + 4 * covered)
    assert 0.01 < float((weights > 1).float().mean()) < 0.5 and float(weights.max()) == 5.0
    assert torch.equal(cell_weights(clip.focus, (9, 16, 16), 0.0), torch.ones(9, 16, 16))
    assert torch.equal(cell_weights(None, (9, 16, 16), 4.0), torch.ones(9, 16, 16))
    with pytest.raises(InvalidParameter, match="object_weight"):
        apply_overrides(TrainConfig(), ["object_weight=-1"])
    with pytest.raises(InvalidParameter, match="timestep_unshifted"):
        apply_overrides(TrainConfig(), ["timestep_unshifted=2"])


def test_a_world_run_with_object_weight_trains(tmp_path):
    out = tmp_path / "run"
    summary = main(apply_overrides(TrainConfig(), [*TINY, "data=world", "buckets=32x32x9", "latent_cache=0",
                                                   "max_steps=4", "object_weight=4", "timestep_shift=12",
                                                   "timestep_unshifted=0.5", f"out_dir={out}"]))
    assert summary["step"] == 4
    losses = [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 2 and all(np.isfinite(losses))
