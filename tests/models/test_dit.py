"""DiT: exact shape algebra, position behaviour, conditioning paths, counting, re-cutting."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from cinepatch.errors import InvalidParameter
from cinepatch.models.dit import (
    PRESETS,
    DiT,
    DiTConfig,
    apply_rope,
    count_params,
    forward_flops,
    grid_positions,
    pad_time,
    patchify,
    recut,
    rope_angles,
    unpatchify,
)

TINY = DiTConfig(
    in_channels=4, patch=(2, 2, 2), width=48, depth=2, heads=2, text_dim=12, qk_norm=True
)


def randomized(config: DiTConfig = TINY, seed: int = 0) -> DiT:
    """A model with every weight random, so zero-initialised paths do not hide bugs."""
    torch.manual_seed(seed)
    model = DiT(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.2)
    return model


def inputs(b: int = 2, t: int = 3, h: int = 4, w: int = 6, L: int = 5, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, TINY.in_channels, t, h, w, generator=g)
    time = torch.rand(b, generator=g)
    text = torch.randn(b, L, TINY.text_dim, generator=g)
    return x, time, text


@pytest.mark.parametrize("patch", [(1, 1, 1), (1, 2, 2), (2, 2, 2), (3, 1, 2), (4, 2, 1)])
@pytest.mark.parametrize("t", [1, 5, 7])
def test_patchify_unpatchify_identity(patch, t):
    x = torch.randn(2, 3, t, 4, 6)
    tokens, grid = patchify(x, patch)
    assert grid == (-(-t // patch[0]), 4 // patch[1], 6 // patch[2])
    assert tokens.shape == (2, grid[0] * grid[1] * grid[2], 3 * patch[0] * patch[1] * patch[2])
    assert torch.equal(unpatchify(tokens, grid, patch, t), x)


def test_patchify_groups_one_spacetime_patch_per_token_and_pads_with_last_frame():
    x = torch.arange(1 * 1 * 3 * 2 * 2, dtype=torch.float32).reshape(1, 1, 3, 2, 2)
    tokens, grid = patchify(x, (2, 2, 2))
    assert grid == (2, 1, 1)
    assert torch.equal(tokens[0, 0], x[0, 0, :2].reshape(-1))  # frames 0-1, all of h×w
    assert torch.equal(tokens[0, 1], torch.cat([x[0, 0, 2].reshape(-1)] * 2))  # frame 2, repeated


def test_pad_time_holds_the_last_frame_up_to_whole_patches():
    x = torch.randn(2, 3, 5, 4, 4)
    held = pad_time(x, 2)
    assert held.shape == (2, 3, 6, 4, 4) and torch.equal(held[:, :, :5], x) and torch.equal(held[:, :, 5], x[:, :, 4])
    assert pad_time(x, 5) is x  # already whole
    mask = torch.tensor([1.0, 0.0, 0.0])
    assert pad_time(mask, 2, dim=0).tolist() == [1.0, 0.0, 0.0, 0.0]


def test_patchify_rejects_sizes_that_do_not_divide():
    with pytest.raises(InvalidParameter, match="latent size"):
        patchify(torch.randn(1, 2, 3, 5, 4), (1, 2, 2))


def test_rope_attention_depends_only_on_relative_position():
    head_dim, n = 24, 10
    g = torch.Generator().manual_seed(0)
    q = torch.randn(1, 1, n, head_dim, generator=g)
    k = torch.randn(1, 1, n, head_dim, generator=g)
    pos = torch.randint(0, 6, (n, 3), generator=g).float()
    scores = []
    for offset in ([0.0, 0.0, 0.0], [3.0, -5.0, 11.0]):
        rope = rope_angles(pos + torch.tensor(offset), head_dim, 10_000.0)
        scores.append(apply_rope(q, rope) @ apply_rope(k, rope).transpose(-1, -2))
    assert torch.allclose(scores[0], scores[1], atol=1e-4)
    # ... and positions do matter: moving only the keys along any one axis changes the scores.
    for axis in range(3):
        moved = pos.clone()
        moved[:, axis] += 1
        rq, rk = rope_angles(pos, head_dim, 10_000.0), rope_angles(moved, head_dim, 10_000.0)
        other = apply_rope(q, rq) @ apply_rope(k, rk).transpose(-1, -2)
        assert not torch.allclose(scores[0], other, atol=1e-3)


def test_rope_preserves_norm_and_grid_positions_are_raster_order():
    x = torch.randn(2, 3, 24, 36)
    pos = grid_positions((2, 3, 4))
    assert pos.shape == (24, 3) and pos[1].tolist() == [0, 0, 1] and pos[4].tolist() == [0, 1, 0]
    rope = rope_angles(pos, 36, 100.0)
    assert torch.allclose(apply_rope(x, rope).norm(dim=-1), x.norm(dim=-1), atol=1e-5)
    # pair (2i, 2i+1) at position p on axis a turns by p·theta^(-2i/d_a): check one by hand
    one = torch.zeros(1, 1, 24, 36)
    one[..., 0] = 1.0  # first pair of the t axis, frequency 1
    turned = apply_rope(one, rope)[0, 0, 12]  # token 12 sits at t = 1
    assert torch.allclose(turned[:2], torch.tensor([math.cos(1.0), math.sin(1.0)]), atol=1e-6)


def test_adaln_zero_init_gives_zero_velocity_and_identity_blocks():
    torch.manual_seed(0)
    model = DiT(TINY).eval()
    x, t, text = inputs()
    assert torch.equal(model(x, t, text_states=text), torch.zeros_like(x))
    h = torch.randn(2, 12, TINY.width)
    c = torch.randn(2, TINY.width)
    ctx, mask = torch.randn(2, 6, TINY.width), torch.ones(2, 6, dtype=torch.bool)
    rope = rope_angles(grid_positions((1, 3, 4)), TINY.head_dim, 1e4)
    assert torch.equal(model.blocks[0](h, c, ctx, mask, rope), h)


def test_x_prediction_returns_the_velocity_of_its_clean_estimate():
    torch.manual_seed(0)
    model = DiT(dataclasses.replace(TINY, prediction="x")).eval()
    x, t, text = inputs()
    # At init the network predicts x̂₀ = 0, so v = (x_t − 0) / t, with t floored.
    t = torch.tensor([0.5, 0.01])
    v = model(x, t, text_states=text)
    assert torch.allclose(v[0], x[0] / 0.5) and torch.allclose(v[1], x[1] / model.config.t_floor)
    # And a perfect clean estimate gives exactly the flow's velocity, noise − x₀.
    x0, noise = torch.randn_like(x), torch.randn_like(x)
    tt = torch.tensor([0.5, 0.3]).view(-1, 1, 1, 1, 1)
    x_t = (1 - tt) * x0 + tt * noise
    with torch.no_grad():
        model.final_layer.linear.bias.zero_()
    from cinepatch.models import dit as dit_module

    real = dit_module.unpatchify
    dit_module.unpatchify = lambda *args: x0
    try:
        v = model(x_t, torch.tensor([0.5, 0.3]), text_states=text)
    finally:
        dit_module.unpatchify = real
    assert torch.allclose(v, noise - x0, atol=1e-5)
    with pytest.raises(InvalidParameter, match="prediction"):
        DiTConfig(prediction="eps")


@pytest.mark.parametrize("qk_norm", [True, False])
def test_output_shape_for_odd_frame_counts_and_any_size(qk_norm):
    model = randomized(dataclasses.replace(TINY, qk_norm=qk_norm))
    for t, h, w in [(1, 2, 2), (5, 4, 6), (9, 8, 2)]:
        x, time, text = inputs(t=t, h=h, w=w)
        v = model(x, time, text_states=text)
        assert v.shape == x.shape and torch.isfinite(v).all()


def test_text_padding_tokens_do_not_change_output():
    model = randomized()
    x, t, text = inputs(L=5)
    mask = torch.ones(2, 5, dtype=torch.bool)
    padded_text = torch.cat([text, 100 * torch.randn(2, 4, TINY.text_dim)], dim=1)
    padded_mask = torch.cat([mask, torch.zeros(2, 4, dtype=torch.bool)], dim=1)
    # default pooled vector (masked mean) and cross-attention both ignore the padding ...
    base = model(x, t, text_states=text, text_mask=mask)
    assert torch.allclose(model(x, t, text_states=padded_text, text_mask=padded_mask), base, atol=1e-5)
    # ... and with the pooled vector fixed, the cross-attention alone does too
    pooled = torch.randn(2, TINY.text_dim)
    base = model(x, t, text_states=text, text_mask=mask, text_pooled=pooled)
    padded = model(x, t, text_states=padded_text, text_mask=padded_mask, text_pooled=pooled)
    assert torch.allclose(padded, base, atol=1e-5)
    # the padded tokens would change the output if they were attended, so this is not vacuous
    unmasked = model(x, t, text_states=padded_text, text_pooled=pooled)
    assert not torch.allclose(unmasked, base, atol=1e-3)


def test_empty_prompt_is_finite_and_differs_from_a_prompt():
    model = randomized()
    x, t, text = inputs()
    empty = model(x, t, text_states=text, text_mask=torch.zeros(2, 5, dtype=torch.bool))
    assert torch.isfinite(empty).all()
    assert not torch.allclose(empty, model(x, t, text_states=text), atol=1e-3)


def test_conditioning_channels_change_output():
    model = randomized()
    x, t, text = inputs(t=4)
    base = model(x, t, text_states=text)
    cond_mask = torch.tensor([[1.0, 0, 0, 0], [1.0, 0, 0, 0]])
    ref = torch.zeros_like(x)
    ref[:, :, 0] = torch.randn_like(x[:, :, 0])
    with_mask = model(x, t, text_states=text, cond_mask=cond_mask, cond_latents=torch.zeros_like(x))
    with_ref = model(x, t, text_states=text, cond_mask=cond_mask, cond_latents=ref)
    assert not torch.allclose(base, with_mask, atol=1e-3)
    assert not torch.allclose(with_mask, with_ref, atol=1e-3)


def test_timestep_changes_output_and_batch_items_are_independent():
    model = randomized()
    x, t, text = inputs()
    v = model(x, t, text_states=text)
    assert not torch.allclose(v, model(x, t.flip(0), text_states=text), atol=1e-3)
    single = model(x[:1], t[:1], text_states=text[:1])
    assert torch.allclose(single, v[:1], atol=1e-5)


def test_gradient_checkpointing_gives_the_same_gradients():
    model = randomized().train()
    x, t, text = inputs()
    grads = []
    for ckpt in (False, True):
        model.grad_checkpointing = ckpt
        model.zero_grad()
        model(x, t, text_states=text).square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert torch.allclose(grads[0], grads[1], atol=1e-6)
    assert grads[0].abs().sum() > 0


def test_config_validation_and_json_round_trip():
    with pytest.raises(InvalidParameter, match="heads"):
        DiTConfig(width=48, heads=5)
    with pytest.raises(InvalidParameter):
        DiTConfig.from_dict({"width": 48, "nope": 1})
    assert DiTConfig.from_dict(TINY.to_dict()) == TINY


def test_recut_patches_in_time_embeds_still_clips_as_before():
    # Patches of 4 frames become patches of 2: on a clip that is still within each 4-frame
    # patch, every new token embeds exactly as the old token over it did, and the output
    # layer's rows are the old rows averaged over the same place in the patch.
    old = randomized(dataclasses.replace(TINY, patch=(4, 2, 2)))
    new = recut(old, patch=(2, 2, 2))
    assert new.config.patch == (2, 2, 2) and torch.equal(new.blocks[0].attn.qkv.weight, old.blocks[0].attn.qkv.weight)
    c_in = TINY.input_channels
    still = torch.randn(1, c_in, 1, 4, 4).repeat(1, 1, 8, 1, 1)  # (B, C, t, h, w), constant in time
    old_embed = patchify(still, (4, 2, 2))[0] @ old.x_embedder.weight.T  # (1, 8, D)
    new_embed = patchify(still, (2, 2, 2))[0] @ new.x_embedder.weight.T  # (1, 16, D)
    assert not torch.allclose(old_embed[:, 0], old_embed[:, 1])
    assert torch.allclose(new_embed.reshape(4, 4, -1), old_embed.reshape(2, 1, 4, -1).expand(2, 2, 4, -1).reshape(4, 4, -1),
                          atol=1e-4)
    w_old = old.final_layer.linear.weight.reshape(4, 2, 2, 2, 2, -1)  # (C, 2 halves, 2 frames, ph, pw, D)
    assert torch.allclose(new.final_layer.linear.weight, w_old.mean(1).reshape(new.final_layer.linear.weight.shape))
    with pytest.raises(InvalidParameter, match="patch"):
        recut(old, patch=(3, 2, 2))


def test_recut_patches_in_space_embeds_blocky_latents_as_before():
    # Patches of 2×2 cells become single cells: on latents constant over each 2×2 block, the
    # four new tokens under an old one embed as it did; output rows are the old block's mean.
    old = randomized(TINY)
    new = recut(old, patch=(2, 1, 1))
    blocks = torch.randn(1, TINY.input_channels, 2, 2, 2).repeat_interleave(2, dim=3).repeat_interleave(2, dim=4)
    old_embed = (patchify(blocks, (2, 2, 2))[0] @ old.x_embedder.weight.T).reshape(2, 2, -1)  # grid (1, 2, 2)
    new_embed = (patchify(blocks, (2, 1, 1))[0] @ new.x_embedder.weight.T).reshape(4, 4, -1)  # grid (1, 4, 4)
    assert not torch.allclose(old_embed[0, 0], old_embed[0, 1])
    assert torch.allclose(new_embed, old_embed.repeat_interleave(2, 0).repeat_interleave(2, 1), atol=1e-4)
    w_old = old.final_layer.linear.weight.reshape(4, 2, 2, 2, -1)  # (C, p_t, p_h, p_w, D)
    assert torch.allclose(new.final_layer.linear.weight, w_old.mean((2, 3)).reshape(8, -1))


def test_recut_to_another_prediction_keeps_the_body_and_zeroes_the_output_layer():
    old = randomized(TINY)
    new = recut(old, prediction="v" if TINY.prediction == "x" else "x")
    assert new.config.prediction != old.config.prediction
    assert torch.equal(new.blocks[0].attn.qkv.weight, old.blocks[0].attn.qkv.weight)
    assert float(new.final_layer.linear.weight.detach().abs().max()) == 0 < float(old.final_layer.linear.weight.detach().abs().max())


def test_param_count_on_meta_matches_real_model():
    assert count_params(TINY) == sum(p.numel() for p in DiT(TINY).parameters())
    sizes = [count_params(c) for c in PRESETS.values()]
    assert sizes == sorted(sizes)
    assert 2e6 < count_params(PRESETS["tiny"]) < 12e6
    assert count_params(PRESETS["xxl"]) > 10e9  # counted on meta: nothing allocated


def test_analytic_flops_match_torch_flop_counter_on_linear_layers():
    from torch.utils.flop_counter import FlopCounterMode

    cfg = dataclasses.replace(TINY, patch=(1, 2, 2))
    model = randomized(cfg)
    x, t, text = inputs(t=3, h=4, w=6, L=5)
    with FlopCounterMode(display=False) as counter:
        model(x, t, text_states=text)
    linear = sum(v for op, v in counter.get_flop_counts()["Global"].items() if "mm" in str(op))
    est = forward_flops(cfg, (3, 4, 6), text_len=5, batch=2)
    assert est["tokens"] == 3 * 2 * 3
    assert linear == est["flops"] - est["attention_flops"]


def test_cli_presets_prints_every_preset_with_tokens(capsys):
    from cinepatch.cli import main

    assert main(["model", "presets", "--latent", "5", "8", "8", "--text-len", "16"]) == 0
    out = capsys.readouterr().out
    assert "latent 5×8×8" in out
    for name in PRESETS:
        line = next(row for row in out.splitlines() if row.startswith(f"{name} "))
        if PRESETS[name].patch == (1, 2, 2):
            assert " 80 " in line  # 5 × 4 × 4 tokens with 1×2×2 patches
        else:
            assert " 12 " in line and PRESETS[name].patch == (2, 4, 4)  # 3 × 2 × 2 tokens
    assert main(["model", "presets", "--frames", "6"]) == 2
    # The clip's latent size follows the VAE preset: the world VAE keeps every frame, 4× in space.
    assert main(["model", "presets", "--vae", "world", "--frames", "6", "--width", "32", "--height", "32"]) == 0
    assert "latent 6×8×8" in capsys.readouterr().out
    assert main(["model", "presets", "--vae", "nope"]) == 2


def test_cli_export_states_what_generation_needs(tiny_model_dir, tmp_path, capsys):
    from cinepatch.backends.embedded import EmbeddedBackend
    from cinepatch.cli import main

    out = tmp_path / "shipped"
    args = ["model", "export", str(tiny_model_dir), "--out", str(out), "--name", "cinepatch-test",
            "--size", "48x32", "--fps", "6", "--max-frames", "13", "--bf16", "--steps", "7", "--shift", "6"]
    assert main(args) == 0
    assert "cinepatch-test, 48x32 at 6 fps" in capsys.readouterr().out
    backend = EmbeddedBackend.from_pretrained(out)
    assert (backend.name, backend.default_size, backend.default_fps, backend.max_frames) == ("cinepatch-test", (48, 32), 6, 13)
    assert (backend.pipeline.sampler.steps, backend.pipeline.sampler.shift) == (7, 6.0)
    assert (out / "dit.safetensors").stat().st_size < 0.6 * (tiny_model_dir / "dit.safetensors").stat().st_size
    # A size the model cannot make is refused before anything is written.
    assert main([*args[:3], "--out", str(tmp_path / "bad"), *args[5:7], "--size", "50x32", *args[9:]]) == 2
    assert not (tmp_path / "bad").exists()
    # So is a shift out of range, naming the option.
    assert main([*args[:3], "--out", str(tmp_path / "bad"), *args[5:-1], "0"]) == 2
    assert "--shift" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
