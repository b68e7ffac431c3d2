"""Rectified flow: time sampling, time shift, training loss and the sampler.

Convention (docs/architecture.md): ``x_t = (1 − t)·x_0 + t·ε``, ``t = 1`` is pure noise, the
model predicts ``v = ε − x_0`` and sampling integrates ``dx/dt = v`` from ``t = 1`` to 0.

The functions take any ``model_fn(x, t, *, cond_mask, cond_latents, **text)`` returning a
velocity shaped like ``x`` — a ``DiT`` works as is. ``text`` is a mapping of keyword tensors
with the batch first (for a DiT: ``text_states``, ``text_mask``, ``text_pooled``), forwarded
unchanged; this module never looks inside it except to batch it with the negative prompt.

Conditioning (the one editing primitive): latent frames with ``cond_mask = 1`` are *given*.
In training and in sampling their entries of ``x_t`` are set to the reference
``cond_latents`` (clean, as if at t = 0) and the model also sees the reference and mask as
input channels; the loss is taken on the other frames only, and the sampler keeps the given
frames at their reference values at every step, so the result carries them exactly.

Sampling can also *release* a frame gradually (``release``, differential diffusion): a frame
that is not given follows its reference noised to the sampler's level — with the run's own
starting noise — until the level falls to its release, and is free from there on. Release 0
keeps the reference; 1 is a free frame. The model sees only the given frames' references, as
in training: a released frame is to it a noisy frame like any other.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from cinepatch.errors import InvalidParameter

__all__ = [
    "sample_timesteps",
    "time_shift",
    "timestep_schedule",
    "flow_loss",
    "sample",
]

ModelFn = Callable[..., Tensor]


# ------------------------------------------------------------------------------------------
# Time: sampling and shift
# ------------------------------------------------------------------------------------------


def time_shift(t: Tensor, shift: float) -> Tensor:
    """SD3's shift of the noise level: ``t' = s·t / (1 + (s − 1)·t)``.

    ``s = 1`` is the identity; ``s > 1`` moves every ``t`` toward noise (``t = 0`` and ``1``
    stay fixed). In signal-to-noise terms it divides the SNR ``((1−t)/t)²`` by ``s²``.
    """
    if shift <= 0:
        raise InvalidParameter("shift", shift, "> 0")
    return shift * t / (1 + (shift - 1) * t)


def sample_timesteps(
    batch: int,
    *,
    mean: float = 0.0,
    std: float = 1.0,
    shift: float = 1.0,
    unshifted: float = 0.0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Logit-normal training times ``t = σ(m + s·z)``, ``z ~ N(0, 1)``, then time-shifted.

    The logit-normal puts most samples at mid noise where the velocity is hardest to
    predict (SD3); a shift > 1 moves weight toward high noise, where the global layout of a
    clip is decided. ``unshifted`` is the share of samples that skip the shift: a large shift
    alone almost never draws ``t < 0.5``, where shapes and edges are finished.
    """
    if not 0.0 <= unshifted <= 1.0:
        raise InvalidParameter("unshifted", unshifted, "0 to 1")
    z = torch.randn(batch, generator=generator, device=device)
    u = torch.sigmoid(mean + std * z)
    t = time_shift(u, shift)
    if unshifted > 0.0:  # no extra draw otherwise: runs without it stay bit-identical
        keep = torch.rand(batch, generator=generator, device=device) < unshifted
        t = torch.where(keep, u, t)
    return t  # (B,)


def timestep_schedule(steps: int, *, shift: float = 1.0, device: torch.device | str | None = None) -> Tensor:
    """The sampler's ``steps + 1`` times from 1 to 0: uniform, then time-shifted."""
    if steps < 1:
        raise InvalidParameter("steps", steps, "≥ 1")
    return time_shift(torch.linspace(1.0, 0.0, steps + 1, device=device), shift)


# ------------------------------------------------------------------------------------------
# Loss
# ------------------------------------------------------------------------------------------


def _frame_mask(cond_mask: Tensor, x: Tensor) -> Tensor:
    return cond_mask.to(x.dtype)[:, None, :, None, None]  # (B, 1, t, 1, 1)


def _validate_cond(
    x: Tensor, cond_mask: Tensor | None, cond_latents: Tensor | None
) -> tuple[Tensor, Tensor]:
    b, _, frames = x.shape[:3]
    if cond_mask is None:
        cond_mask = x.new_zeros(b, frames)
    if cond_latents is None:
        cond_latents = torch.zeros_like(x)
    if tuple(cond_mask.shape) != (b, frames):
        raise InvalidParameter("cond_mask shape", tuple(cond_mask.shape), f"(B, t) = {(b, frames)}")
    if cond_latents.shape != x.shape:
        raise InvalidParameter("cond_latents shape", tuple(cond_latents.shape), f"{tuple(x.shape)}")
    return cond_mask.to(x.dtype), cond_latents.to(x.dtype)


def flow_loss(
    model_fn: ModelFn,
    x0: Tensor,
    *,
    text: Mapping[str, Tensor] | None = None,
    cond_mask: Tensor | None = None,
    cond_latents: Tensor | None = None,
    weight: Tensor | None = None,
    t: Tensor | None = None,
    noise: Tensor | None = None,
    shift: float = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Weighted velocity MSE on the unconditioned latent frames (``cond_mask == 0``) only.

    ``x0 (B, C, t, h, w)`` clean latents; ``weight (B, t, h, w)`` a loss weight per latent
    cell (default all ones; the trainer's object weighting); ``t (B,)`` and ``noise`` are
    drawn (logit-normal, shifted by ``shift``; standard normal) when not given. ``text`` is
    forwarded to the model unchanged (any further per-clip inputs ride along in it).

    Each clip's weighted mean over its unconditioned cells, then the mean over clips (0 for a
    clip with every frame conditioned). Why per clip: under DDP every rank averages its own
    equal-sized slice and the ranks are averaged, which equals this number on the whole batch
    only when every clip counts the same, whatever its mask.
    """
    cond_mask, cond_latents = _validate_cond(x0, cond_mask, cond_latents)
    b = x0.shape[0]
    if weight is None:
        weight = x0.new_ones(b, *x0.shape[2:])
    if tuple(weight.shape) != (b, *x0.shape[2:]):
        raise InvalidParameter("weight shape", tuple(weight.shape), f"(B, t, h, w) = {(b, *x0.shape[2:])}")
    if t is None:
        t = sample_timesteps(b, shift=shift, generator=generator, device=x0.device)
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    m = _frame_mask(cond_mask, x0)  # (B, 1, t, 1, 1)
    t_ = t.to(x0.dtype)[:, None, None, None, None]  # (B, 1, 1, 1, 1)
    x_t = (1 - t_) * x0 + t_ * noise  # (B, C, t, h, w)
    x_t = torch.where(m > 0, cond_latents, x_t)  # given frames at their reference
    v = model_fn(x_t, t, cond_mask=cond_mask, cond_latents=cond_latents, **(text or {}))
    target = noise - x0  # (B, C, t, h, w)
    w = ((1 - m) * weight.to(x0.dtype)[:, None]).expand_as(x0)  # (B, C, t, h, w)
    # where(), not a product, so a non-finite prediction on a given frame cannot leak in.
    err = torch.where(w > 0, (v.float() - target.float()) ** 2 * w, 0.0)  # (B, C, t, h, w)
    per_clip = err.flatten(1).sum(1) / w.flatten(1).sum(1).clamp_min(1.0)  # (B,)
    return per_clip.mean()


# ------------------------------------------------------------------------------------------
# Sampler
# ------------------------------------------------------------------------------------------


def _pad_to(x: Tensor, length: int) -> Tensor:
    """Pad dim 1 (the token axis of text states and masks) with zeros / False."""
    extra = length - x.shape[1]
    if extra <= 0:
        return x
    pad = [0, 0] * (x.dim() - 2) + [0, extra]
    return F.pad(x, pad, value=False if x.dtype == torch.bool else 0.0)


def _cat_text(a: Mapping[str, Tensor], b: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Stack two text conditionings along the batch, padding the token axis to match."""
    if set(a) != set(b):
        raise InvalidParameter("negative", sorted(b), f"the same keys as text: {sorted(a)}")
    out = {}
    for key in a:
        x, y = a[key], b[key]
        if x.dim() >= 2 and x.shape[1] != y.shape[1] and x.shape[2:] == y.shape[2:]:
            n = max(x.shape[1], y.shape[1])
            x, y = _pad_to(x, n), _pad_to(y, n)
        out[key] = torch.cat([x, y], dim=0)
    return out


def _follower(
    x: Tensor, given: Tensor, reference: Tensor, release: Tensor | None
) -> Callable[[Tensor, float], Tensor]:
    """``follow(x, t)``: ``x`` with every released frame still above its release level set to
    its reference noised to ``t`` with the starting noise ``x`` (identity without ``release``)."""
    if release is None:
        return lambda x, t: x
    b, _, frames = x.shape[:3]
    if tuple(release.shape) != (b, frames):
        raise InvalidParameter("release shape", tuple(release.shape), f"(B, t) = {(b, frames)}")
    if bool(((release < 0) | (release > 1)).any()):
        raise InvalidParameter("release", "values", "0 to 1 per latent frame")
    level = release.to(x.dtype)[:, None, :, None, None]
    noise = x.clone()

    def follow(x: Tensor, t: float) -> Tensor:
        held = (level <= t) & ~given
        return torch.where(held, (1 - t) * reference + t * noise, x)

    return follow


def sample(
    model_fn: ModelFn,
    noise: Tensor | Sequence[int],
    *,
    steps: int = 30,
    method: str = "euler",
    guidance: float = 1.0,
    text: Mapping[str, Tensor] | None = None,
    negative: Mapping[str, Tensor] | None = None,
    cond_mask: Tensor | None = None,
    cond_latents: Tensor | None = None,
    shift: float = 1.0,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    callback: Callable[[int, float, Tensor], None] | None = None,
    release: Tensor | None = None,
    away: Mapping[str, Tensor] | None = None,
    away_scale: Tensor | None = None,
) -> Tensor:
    """Integrate from noise (t = 1) to data (t = 0); returns ``x_0 (B, C, t, h, w)``.

    ``noise`` is the starting tensor, or a shape to draw it from ``generator`` (or a fresh
    one seeded with ``seed``) — the same seed gives the same result. ``method`` is ``"euler"``
    (one model call per step) or ``"heun"`` (two, the last step Euler). Classifier-free
    guidance ``v = v_neg + g·(v_text − v_neg)`` runs cond and uncond in one batch.
    ``negative`` is the negative or empty-prompt conditioning, same keys as ``text`` (token
    axes may differ in length; the shorter is padded with zeros / False).
    ``callback(step, t_next, x)`` is called after every step. ``release (B, t)`` in 0..1
    releases frames gradually (module docstring); their references are in ``cond_latents``.
    ``away`` (same keys as ``text``) with ``away_scale (B, 1, t, h, w)`` adds a regional term,
    ``v += away_scale·(v_text − v_away)``: where the scale is not zero, the velocity is pushed
    further from what ``away`` alone would draw (one more batch in the same call).
    """
    # -- validate at the edge --------------------------------------------------------------
    if method not in ("euler", "heun"):
        raise InvalidParameter("method", method, "'euler' or 'heun'")
    if guidance < 0:
        raise InvalidParameter("guidance", guidance, "≥ 0 (1 = no guidance)")
    guided = guidance != 1.0
    if guided and negative is None:
        raise InvalidParameter(
            "negative", None, "a conditioning to guide against when guidance ≠ 1",
            hint="pass the empty-prompt embedding for plain classifier-free guidance",
        )
    text = dict(text or {})
    if not isinstance(noise, Tensor):
        if generator is None:
            generator = torch.Generator().manual_seed(0 if seed is None else seed)
        noise = torch.randn(tuple(noise), generator=generator)
    x = noise
    cond_mask, cond_latents = _validate_cond(x, cond_mask, cond_latents)
    m = _frame_mask(cond_mask, x) > 0  # (B, 1, t, 1, 1) bool
    follow = _follower(x, m, cond_latents, release)
    cond_latents = cond_latents * m  # the model sees the given frames' references only
    if (away is None) != (away_scale is None):
        raise InvalidParameter("away / away_scale", "one of them", "both or neither")
    if away_scale is not None and (away_scale.dim() != 5 or away_scale.shape[0] != x.shape[0] or away_scale.shape[1] != 1
                                   or away_scale.shape[2:] != x.shape[2:]):  # fmt: skip
        raise InvalidParameter("away_scale shape", tuple(away_scale.shape), f"(B, 1, t, h, w) for x {tuple(x.shape)}")
    batches = [text] + ([negative] if guided and negative is not None else []) + ([away] if away is not None else [])
    inputs = batches[0]
    for more in batches[1:]:
        inputs = _cat_text(inputs, more)
    k, b = len(batches), x.shape[0]

    def velocity(x: Tensor, t: float) -> Tensor:
        """The (guided) velocity at one time, conditioned frames' velocity set to 0."""
        tt = x.new_full((b,), t)
        vs = model_fn(
            torch.cat([x] * k), torch.cat([tt] * k), cond_mask=torch.cat([cond_mask] * k),
            cond_latents=torch.cat([cond_latents] * k), **inputs,
        ).chunk(k)
        v = vs[0]
        if guided:
            v = vs[1] + guidance * (vs[0] - vs[1])
        if away_scale is not None:
            v = v + away_scale.to(v.dtype) * (vs[0] - vs[-1])
        return torch.where(m, 0.0, v)

    # -- the loop ------------------------------------------------------------------------
    ts = timestep_schedule(steps, shift=shift).tolist()
    x = follow(torch.where(m, cond_latents, x), ts[0])  # given frames start (and stay) at their reference
    with torch.no_grad():
        for i in range(steps):
            t, t_next = ts[i], ts[i + 1]
            dt = t - t_next  # > 0: we move toward t = 0
            v = velocity(x, t)
            if method == "heun" and t_next > 0:
                x_euler = x - dt * v
                v = 0.5 * (v + velocity(x_euler, t_next))
            x = x - dt * v
            x = follow(torch.where(m, cond_latents, x), t_next)
            if callback is not None:
                callback(i, t_next, x)
    return x
