"""train.py: config overrides, schedules, loss falling, exact resume (also after kill -9),
and a 2-process gloo torchrun whose gradients equal a 1-process run on the same batch."""

from __future__ import annotations

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
from cinepatch.train import COND_KINDS, TrainConfig, apply_overrides, cell_weights, draw_cond_mask, lr_at, main

sys.path.insert(0, str(Path(__file__).parent / "data"))
from test_data import make_clips  # noqa: E402

TINY = [
    "dit.width=32", "dit.depth=2", "dit.heads=2", "vae_preset=tiny", "buckets=32x32x9,32x32x1",
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


def test_conditioning_kinds_can_be_chosen_and_weighted():
    cfg = apply_overrides(TrainConfig(), ["cond_kinds=leading,leading,first"])
    assert cfg.cond_kinds == ("leading", "leading", "first")
    rng = np.random.default_rng(1)
    drawn = [draw_cond_mask(9, rng, 1.0, cfg.cond_kinds)[0] for _ in range(3000)]
    assert set(drawn) == {"leading", "first"} and 1800 < drawn.count("leading") < 2200
    assert draw_cond_mask(2, rng, 1.0, ("middle",))[0] == "none"  # no middle in two frames
    with pytest.raises(InvalidParameter, match="cond_kinds"):
        TrainConfig(cond_kinds=("leading", "sideways"))


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
    assert shifts == [1.0, 5.0]
    # Switching to x-prediction keeps the body and starts the output layer again from zero.
    main(tiny(tmp_path / "c", clips, "max_steps=1", f"init_from={tmp_path / 'a' / 'pipeline'}", "dit.prediction=x",
              "lr=1e-12", "min_lr=1e-12"))
    switched = load_file(str(tmp_path / "c" / "pipeline" / "dit.safetensors"))
    assert torch.allclose(switched["blocks.0.attn.qkv.weight"], source["blocks.0.attn.qkv.weight"], atol=1e-6)
    assert float(switched["final_layer.linear.weight"].abs().max()) < 1e-6 < float(source["final_layer.linear.weight"].abs().max())


def test_self_conditioning_starts_from_a_dit_without_it_and_trains(clips, tmp_path):
    # Starting a self-conditioned DiT from one without: the estimate's input channels are
    # appended with zero weights, so before training both predict the same; then it learns.
    from cinepatch.pipeline import Pipeline

    main(tiny(tmp_path / "a", clips, "max_steps=2"))
    main(tiny(tmp_path / "b", clips, "max_steps=1", "dit.self_cond=true", f"init_from={tmp_path / 'a' / 'pipeline'}",
              "lr=1e-12", "min_lr=1e-12"))
    a, b = (Pipeline.from_pretrained(tmp_path / run / "pipeline").dit for run in "ab")
    extra = b.config.in_channels * b.config.patch_volume  # the estimate's C channels, patched
    assert b.config.self_cond and b.x_embedder.weight.shape[1] == a.x_embedder.weight.shape[1] + extra
    x, t = torch.randn(1, a.config.in_channels, 4, 4, 4), torch.tensor([0.7])
    text = dict(text_states=torch.randn(1, 3, a.config.text_dim))
    with torch.no_grad():
        assert torch.allclose(a(x, t, **text), b(x, t, **text, x_self=torch.randn_like(x)), atol=1e-5)
    summary = main(tiny(tmp_path / "c", clips, "max_steps=3", "dit.self_cond=true", f"init_from={tmp_path / 'b' / 'pipeline'}"))
    c = Pipeline.from_pretrained(tmp_path / "c" / "pipeline").dit
    assert np.isfinite(summary["loss"])
    assert float(c.x_embedder.weight[:, -extra:].detach().abs().max()) > 0  # the new inputs got gradients


def _re_cut(clips, tmp_path, old: str, new: str) -> tuple[dict, dict]:
    """Train a tiny DiT with patches ``old`` for 2 steps, start one with ``new`` from it (no
    learning); return both runs' DiT weights."""
    from safetensors.torch import load_file

    main(tiny(tmp_path / "a", clips, "max_steps=2", f"dit.patch={old}"))
    main(tiny(tmp_path / "b", clips, "max_steps=1", f"dit.patch={new}", f"init_from={tmp_path / 'a' / 'pipeline'}",
              "lr=1e-12", "min_lr=1e-12"))
    return tuple(load_file(str(tmp_path / run / "pipeline" / "dit.safetensors")) for run in "ab")


def test_init_from_re_cuts_patches_in_time(clips, tmp_path):
    # A DiT trained on patches of 4 frames starts one with patches of 2: on a clip that is still
    # within each 4-frame patch, every new token embeds exactly as the old token over it did,
    # and the output layer's rows are the old rows averaged over the same place in the patch.
    from cinepatch.models.dit import patchify

    old, new = _re_cut(clips, tmp_path, "[4,2,2]", "[2,2,2]")
    assert torch.allclose(new["blocks.0.attn.qkv.weight"], old["blocks.0.attn.qkv.weight"], atol=1e-6)
    c_in = 2 * 4 + 1  # the tiny VAE's 4 latent channels, twice, and the mask
    still = torch.randn(1, c_in, 1, 4, 4).repeat(1, 1, 8, 1, 1)  # (B, C, t, h, w), constant in time
    old_tokens, _ = patchify(still, (4, 2, 2))  # (1, 2·2·2, ...)
    new_tokens, _ = patchify(still, (2, 2, 2))  # (1, 4·2·2, ...)
    old_embed = old_tokens @ old["x_embedder.weight"].T  # (1, 8, D)
    new_embed = new_tokens @ new["x_embedder.weight"].T  # (1, 16, D)
    assert not torch.allclose(old_embed[:, 0], old_embed[:, 1])
    assert torch.allclose(new_embed.reshape(4, 4, -1), old_embed.reshape(2, 1, 4, -1).expand(2, 2, 4, -1).reshape(4, 4, -1),
                          atol=1e-4)
    w_old = old["final_layer.linear.weight"].reshape(4, 2, 2, 2, 2, -1)  # (C, 2 halves, 2 frames, ph, pw, D)
    assert torch.allclose(new["final_layer.linear.weight"], w_old.mean(1).reshape(new["final_layer.linear.weight"].shape))
    with pytest.raises(InvalidParameter, match="dit.patch"):
        main(tiny(tmp_path / "c", clips, "max_steps=1", "dit.patch=[3,2,2]", f"init_from={tmp_path / 'a' / 'pipeline'}"))


def test_init_from_re_cuts_patches_in_space(clips, tmp_path):
    # Patches of 2×2 cells become single cells: on latents constant over each 2×2 block, the
    # four new tokens under an old one embed as it did; output rows are the old block's mean.
    from cinepatch.models.dit import patchify

    old, new = _re_cut(clips, tmp_path, "[2,2,2]", "[2,1,1]")
    c_in = 2 * 4 + 1
    blocks = torch.randn(1, c_in, 2, 2, 2).repeat_interleave(2, dim=3).repeat_interleave(2, dim=4)  # (1, C, 2, 4, 4)
    old_tokens, _ = patchify(blocks, (2, 2, 2))  # grid (1, 2, 2)
    new_tokens, _ = patchify(blocks, (2, 1, 1))  # grid (1, 4, 4)
    old_embed = (old_tokens @ old["x_embedder.weight"].T).reshape(2, 2, -1)
    new_embed = (new_tokens @ new["x_embedder.weight"].T).reshape(4, 4, -1)
    assert not torch.allclose(old_embed[0, 0], old_embed[0, 1])
    assert torch.allclose(new_embed, old_embed.repeat_interleave(2, 0).repeat_interleave(2, 1), atol=1e-4)
    w_old = old["final_layer.linear.weight"].reshape(4, 2, 2, 2, -1)  # (C, p_t, p_h, p_w, D)
    assert torch.allclose(new["final_layer.linear.weight"], w_old.mean((2, 3)).reshape(8, -1))


def test_init_from_adds_a_refiner_that_starts_at_zero(clips, tmp_path):
    from safetensors.torch import load_file

    from cinepatch.pipeline import Pipeline

    main(tiny(tmp_path / "a", clips, "max_steps=2"))
    main(tiny(tmp_path / "b", clips, "max_steps=1", "dit.refiner=4", f"init_from={tmp_path / 'a' / 'pipeline'}",
              "lr=1e-12", "min_lr=1e-12"))
    old = load_file(str(tmp_path / "a" / "pipeline" / "dit.safetensors"))
    new = load_file(str(tmp_path / "b" / "pipeline" / "dit.safetensors"))
    assert torch.allclose(new["blocks.0.attn.qkv.weight"], old["blocks.0.attn.qkv.weight"], atol=1e-6)
    assert float(new["refiner.conv_out.weight"].abs().max()) < 1e-6 < float(new["refiner.conv_in.weight"].abs().max())
    assert Pipeline.from_pretrained(tmp_path / "b" / "pipeline").dit.config.refiner == 4
    # The other way round drops trained weights, so it is refused.
    with pytest.raises(InvalidParameter, match="init_from"):
        main(tiny(tmp_path / "c", clips, "max_steps=1", f"init_from={tmp_path / 'b' / 'pipeline'}"))


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
