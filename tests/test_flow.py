"""Rectified flow: analytic checks of the schedule, the loss and the sampler."""

from __future__ import annotations

import math

import pytest
import torch

from cinepatch.errors import InvalidParameter
from cinepatch.flow import (
    flow_loss,
    sample,
    sample_timesteps,
    time_shift,
    timestep_schedule,
)
from cinepatch.models.dit import DiT, DiTConfig

SHAPE = (2, 3, 5, 4, 4)


def test_time_shift_fixes_endpoints_and_moves_toward_noise():
    t = torch.linspace(0, 1, 11)
    assert torch.equal(time_shift(t, 1.0), t)
    s = time_shift(t, 3.0)
    assert s[0] == 0 and s[-1] == 1 and (s[1:-1] > t[1:-1]).all()
    # SNR is divided by shift²
    snr = lambda u: ((1 - u) / u) ** 2  # noqa: E731
    assert torch.allclose(snr(s[1:-1]), snr(t[1:-1]) / 9, rtol=1e-4)
    with pytest.raises(InvalidParameter):
        time_shift(t, 0.0)


def test_logit_normal_times_are_seeded_in_range_and_shift_moves_the_median():
    a = sample_timesteps(4096, generator=torch.Generator().manual_seed(0))
    b = sample_timesteps(4096, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and (a > 0).all() and (a < 1).all()
    assert abs(a.median().item() - 0.5) < 0.03
    shifted = sample_timesteps(4096, shift=3.0, generator=torch.Generator().manual_seed(0))
    assert abs(shifted.median().item() - 0.75) < 0.03  # time_shift(0.5, 3) = 0.75


def test_unshifted_share_keeps_low_noise_times_under_a_large_shift():
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    shifted = sample_timesteps(8192, shift=12.0, generator=gen())
    mixed = sample_timesteps(8192, shift=12.0, unshifted=0.5, generator=gen())
    assert (shifted < 0.5).float().mean() < 0.02  # a shift of 12 alone almost never goes there
    assert 0.2 < (mixed < 0.5).float().mean() < 0.3  # half unshifted: half of those are < 0.5
    assert (mixed > 0.98).float().mean() > 0.03  # and the shifted half still reaches pure noise
    assert torch.equal(sample_timesteps(64, shift=12.0, unshifted=0.0, generator=gen()),
                       sample_timesteps(64, shift=12.0, generator=gen()))
    with pytest.raises(InvalidParameter, match="unshifted"):
        sample_timesteps(4, unshifted=1.5)


def test_schedule_runs_from_one_to_zero_monotonically():
    ts = timestep_schedule(10, shift=2.0)
    assert ts[0] == 1 and ts[-1] == 0 and (ts[1:] < ts[:-1]).all()


def constant_velocity(c):
    calls = []

    def model_fn(x, t, *, cond_mask, cond_latents, **text):
        calls.append((x.shape[0], float(t[0])))
        return c.expand_as(x).clone()

    return model_fn, calls


@pytest.mark.parametrize("method", ["euler", "heun"])
@pytest.mark.parametrize("shift", [1.0, 3.0])
def test_sampler_is_exact_for_a_constant_velocity(method, shift):
    noise = torch.randn(SHAPE)
    c = torch.randn(1, 3, 1, 1, 1)
    model_fn, _ = constant_velocity(c)
    x0 = sample(model_fn, noise, steps=7, method=method, shift=shift)
    assert torch.allclose(x0, noise - c, atol=1e-5)


def test_euler_is_exact_on_straight_paths_from_a_true_velocity_model():
    # For a single data point x0 the ideal velocity is (x_t - x0) / t; every path is straight.
    x_data = torch.randn(SHAPE)
    model_fn = lambda x, t, **_: (x - x_data) / t[:, None, None, None, None]  # noqa: E731
    out = sample(model_fn, torch.randn(SHAPE), steps=3)
    assert torch.allclose(out, x_data, atol=1e-5)


def true_velocity_model(x0, garbage=0.0):
    """Predicts the exact velocity from x_t where it can, and `garbage` on given frames."""

    def model_fn(x, t, *, cond_mask, cond_latents, **text):
        v = (x - x0) / t[:, None, None, None, None]
        m = cond_mask[:, None, :, None, None] > 0
        return torch.where(m, torch.full_like(v, garbage), v)

    return model_fn


def test_true_velocity_gives_zero_loss_and_wrong_velocity_does_not():
    x0 = torch.randn(SHAPE)
    g = torch.Generator().manual_seed(0)
    assert flow_loss(true_velocity_model(x0), x0, generator=g).item() < 1e-9
    zero = lambda x, t, **_: torch.zeros_like(x)  # noqa: E731
    noise = torch.randn(SHAPE)
    loss = flow_loss(zero, x0, noise=noise, t=torch.full((2,), 0.5)).item()
    assert math.isclose(loss, (noise - x0).square().mean().item(), rel_tol=1e-5)


def test_loss_ignores_conditioned_frames():
    x0 = torch.randn(SHAPE)
    cond_mask = torch.tensor([[1.0, 1, 0, 0, 0], [0, 0, 0, 0, 1]])
    ref = x0 * cond_mask[:, None, :, None, None]
    kwargs = dict(cond_mask=cond_mask, cond_latents=ref, t=torch.tensor([0.3, 0.8]),
                  noise=torch.randn(SHAPE))
    assert flow_loss(true_velocity_model(x0, garbage=1e6), x0, **kwargs).item() < 1e-9
    assert flow_loss(true_velocity_model(x0, garbage=float("nan")), x0, **kwargs).item() < 1e-9
    # the model sees the reference, not noise, on given frames
    seen = {}

    def spy(x, t, *, cond_mask, cond_latents, **text):
        seen["x"] = x
        return torch.zeros_like(x)

    flow_loss(spy, x0, **kwargs)
    assert torch.equal(seen["x"][0, :, :2], x0[0, :, :2])
    assert not torch.allclose(seen["x"][0, :, 2:], x0[0, :, 2:])


def test_loss_gradient_is_zero_on_conditioned_frames():
    x0 = torch.randn(SHAPE)
    cond_mask = torch.tensor([[1.0, 0, 0, 0, 0]] * 2)
    pred = torch.zeros(SHAPE, requires_grad=True)
    flow_loss(lambda x, t, **_: pred, x0, cond_mask=cond_mask, cond_latents=x0 * 0).backward()
    assert (pred.grad[:, :, 0] == 0).all() and (pred.grad[:, :, 1:] != 0).all()


def test_loss_weights_cells_and_averages_each_clip_then_the_batch():
    x0, noise = torch.randn(SHAPE), torch.randn(SHAPE)
    zero = lambda x, t, **_: torch.zeros_like(x)  # noqa: E731
    cond_mask = torch.tensor([[1.0, 1, 1, 0, 0], [0, 0, 0, 0, 0]])  # clip 0 has 2 free frames, clip 1 has 5
    weight = 1 + 3 * torch.rand(SHAPE[0], *SHAPE[2:])  # (B, t, h, w)
    kwargs = dict(noise=noise, t=torch.full((2,), 0.5), cond_mask=cond_mask, cond_latents=x0 * 0)
    loss = flow_loss(zero, x0, weight=weight, **kwargs).item()
    sq = (noise - x0).square()  # the zero model's squared error per element
    free = (1 - cond_mask)[:, None, :, None, None] * weight[:, None]  # (B, 1, t, h, w)
    per_clip = [float((sq[i] * free[i]).sum() / free[i].expand_as(sq[i]).sum()) for i in range(2)]
    assert math.isclose(loss, sum(per_clip) / 2, rel_tol=1e-5)
    # Every clip counts the same whatever its mask: not the mean over all free elements.
    pooled = float((sq * free).sum() / free.expand_as(sq).sum())
    assert not math.isclose(loss, pooled, rel_tol=1e-3)
    # All-ones weight is the plain loss; a weight of the wrong shape is refused by name.
    assert flow_loss(zero, x0, weight=torch.ones(SHAPE[0], *SHAPE[2:]), **kwargs) == flow_loss(zero, x0, **kwargs)
    with pytest.raises(InvalidParameter, match="weight"):
        flow_loss(zero, x0, weight=torch.ones(SHAPE[2:]), **kwargs)


def tiny_dit():
    torch.manual_seed(0)
    model = DiT(DiTConfig(in_channels=3, patch=(1, 2, 2), width=24, depth=2, heads=2, text_dim=8))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.2)
    return model.eval()


def test_sampler_is_deterministic_for_a_seed_with_a_real_model():
    model = tiny_dit()
    text = {"text_states": torch.randn(2, 3, 8), "text_mask": torch.ones(2, 3, dtype=torch.bool)}
    neg = {"text_states": torch.zeros(2, 1, 8), "text_mask": torch.zeros(2, 1, dtype=torch.bool)}
    run = lambda seed: sample(model, SHAPE, steps=4, seed=seed, text=text, negative=neg,  # noqa: E731
                              guidance=3.0, method="heun")
    a, b, c = run(7), run(7), run(8)
    assert torch.equal(a, b) and torch.isfinite(a).all()
    assert not torch.allclose(a, c)


def test_conditioned_frames_stay_at_their_reference():
    model = tiny_dit()
    text = {"text_states": torch.randn(2, 3, 8)}
    cond_mask = torch.tensor([[1.0, 0, 0, 0, 1], [0, 0, 1, 0, 0]])
    ref = torch.randn(SHAPE) * cond_mask[:, None, :, None, None]
    seen = []
    out = sample(model, SHAPE, steps=3, seed=0, text=text, cond_mask=cond_mask, cond_latents=ref,
                 callback=lambda i, t, x: seen.append(x))
    m = cond_mask[:, None, :, None, None].expand(SHAPE) > 0
    assert torch.equal(out[m], ref[m])
    assert all(torch.equal(x[m], ref[m]) for x in seen) and len(seen) == 3
    assert not torch.equal(out[~m], torch.zeros_like(out[~m]))


def test_guidance_runs_cond_and_uncond_in_one_batch():
    c_text, c_neg = torch.tensor(1.0), torch.tensor(-1.0)

    def model_fn(x, t, *, cond_mask, cond_latents, text_states):
        calls.append((x.shape[0], float(t[0])))
        return text_states.reshape(-1, 1, 1, 1, 1).expand_as(x).clone()

    text = {"text_states": c_text.expand(2, 1)}
    neg = {"text_states": c_neg.expand(2, 1)}
    calls = []
    steps, g = 10, 4.0
    out = sample(model_fn, torch.zeros(SHAPE), steps=steps, guidance=g, text=text, negative=neg)
    assert [b for b, t in calls] == [4] * steps
    # guided velocity is v_neg + g (v_text - v_neg) = -1 + 4·2 = 7 at every step; the steps sum to 1
    assert torch.allclose(out, torch.full(SHAPE, -7.0), atol=1e-5)


def test_away_guidance_adds_its_term_only_where_its_scale_is():
    def model_fn(x, t, *, cond_mask, cond_latents, text_states):
        calls.append(x.shape[0])
        return text_states.reshape(-1, 1, 1, 1, 1).expand_as(x).clone()

    text, neg, away = ({"text_states": torch.tensor(c).expand(2, 1)} for c in (1.0, -1.0, 0.5))
    scale = torch.zeros(SHAPE[0], 1, *SHAPE[2:])
    scale[0, :, 2:, :2] = 2.0  # one video, some frames, some rows
    calls = []
    out = sample(model_fn, torch.zeros(SHAPE), steps=4, guidance=4.0, text=text, negative=neg, away=away,
                 away_scale=scale)
    assert calls == [6] * 4  # text, negative and away in one batch
    # v = -1 + 4·(1 − −1) = 7, plus 2·(1 − 0.5) = 1 where the scale is 2; x₀ = −v
    expected = torch.where(scale.expand(SHAPE) > 0, -8.0, -7.0)
    assert torch.allclose(out, expected, atol=1e-5)
    with pytest.raises(InvalidParameter, match="away"):
        sample(model_fn, SHAPE, steps=1, text=text, away=away)
    with pytest.raises(InvalidParameter, match="away_scale shape"):
        sample(model_fn, SHAPE, steps=1, text=text, away=away, away_scale=scale[:, :, :2])


def test_guidance_one_never_doubles_the_batch_and_needs_no_negative():
    model_fn, calls = constant_velocity(torch.tensor(0.5))
    sample(model_fn, torch.zeros(SHAPE), steps=4)
    assert [b for b, _ in calls] == [2] * 4


def test_negative_prompt_of_another_length_is_padded():
    model = tiny_dit()
    text = {"text_states": torch.randn(2, 5, 8), "text_mask": torch.ones(2, 5, dtype=torch.bool)}
    neg = {"text_states": torch.randn(2, 2, 8), "text_mask": torch.ones(2, 2, dtype=torch.bool)}
    out = sample(model, SHAPE, steps=2, seed=0, text=text, negative=neg, guidance=2.0)
    assert out.shape == SHAPE and torch.isfinite(out).all()


def test_sampler_validates_at_the_edge():
    model_fn, _ = constant_velocity(torch.tensor(0.0))
    with pytest.raises(InvalidParameter, match="method"):
        sample(model_fn, SHAPE, method="rk4")
    with pytest.raises(InvalidParameter, match="negative"):
        sample(model_fn, SHAPE, guidance=5.0)
    with pytest.raises(InvalidParameter, match="steps"):
        sample(model_fn, SHAPE, steps=0)
