"""Spacetime-patch diffusion transformer (DiT) for video latents.

Read top to bottom: patchify, 3D rotary positions, embedders, attention, block, final layer,
the model, named sizes, counting. The model predicts the rectified-flow velocity
``v = ε − x_0`` (see ``cinepatch.flow``); it never samples.

Input: the noisy latents ``x_t (B, C, t, h, w)`` are concatenated with the conditioning
primitive — reference latents ``cond_latents (B, C, t, h, w)`` and the per-latent-frame mask
``cond_mask (B, t)`` broadcast over space — into ``2C + 1`` channels, cut into
``p_t × p_h × p_w`` spacetime patches and embedded as tokens. Every image-to-video, extend,
loop or blend edit is a different mask and reference; none needs model code.

Conditioning:

- timestep and pooled text go through adaLN-Zero (one shift/scale/gate set per block,
  zero-initialised so every block starts as the identity);
- the text token states go through *cross-attention*, not joint attention. Why: (1) video
  tokens outnumber text tokens by 10–100×, so joint attention (MMDiT) buys little expressive
  power per FLOP while doubling the per-block weights (a second stream for text); (2) the
  self-attention over video keeps a length that depends on the video only, so a trained model
  runs at any prompt length with the same FLOPs profile; (3) padding is handled exactly with a
  key mask and no text state is rewritten per block, so the text K/V are a pure function of
  the prompt. A learned *null* key/value is always present in the cross-attention, so an
  empty prompt (mask all false — unconditional guidance) is well defined rather than NaN.

Positions: 3D rotary embedding on queries and keys of the self-attention, the head dimension
split across the t, h and w axes. Attention scores then depend on relative spacetime offsets
only, there is no table to outgrow, and any size or duration runs. Positions are fixed
(not learned), which the training-budget findings point to: small-initialised learned
positions left a CPU-trained model without a sense of "where".
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from cinepatch.errors import InvalidParameter

__all__ = [
    "DiTConfig",
    "PRESETS",
    "DiT",
    "pad_time",
    "patchify",
    "unpatchify",
    "rope_axis_dims",
    "rope_angles",
    "grid_positions",
    "apply_rope",
    "count_params",
    "forward_flops",
    "recut",
]


# ------------------------------------------------------------------------------------------
# Config
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DiTConfig:
    """Shape of a DiT. Defaults are the ``tiny`` CPU model.

    ``in_channels`` is the latent channel count C of the VAE (the model reads ``2C + 1``
    channels and writes C). ``patch`` is ``(p_t, p_h, p_w)``
    in latent cells.
    """

    in_channels: int = 16
    patch: tuple[int, int, int] = (1, 2, 2)
    width: int = 256
    depth: int = 6
    heads: int = 4
    mlp_ratio: float = 4.0
    text_dim: int = 384
    qk_norm: bool = False
    rope_theta: float = 10_000.0
    grad_checkpointing: bool = False
    # What the network's last layer predicts; forward always returns the velocity. "x": the
    # clean latents, turned into v = (x_t − x̂₀) / t (t floored at t_floor). A token holding
    # more numbers than the width (a 4×4×4 patch of 8 channels is 512) cannot carry full-rank
    # noise through the network, so v-prediction leaves noise in the picture; clean latents
    # are low-dimensional and can (Li & He, "Back to Basics: Let Denoising Generative Models
    # Denoise", 2025).
    prediction: str = "v"
    t_floor: float = 0.05
    # Layout grounding (scene plans): width of each object's phrase projection in the box maps
    # the model reads beside its latents; 0 builds a text-only DiT. See DiT.forward.
    layout_dim: int = 0
    # Width of the per-cell head of a layout-grounded DiT (0: none). A token covers
    # p_t × p_h × p_w latent cells, and the final linear paints all of them from the token alone;
    # the head adds, per cell, a small MLP over the token's features and that cell's own box maps
    # (phrase and position in the box), so an outline inside a box (a circle, not a box-shaped
    # blob) is a function of the cell's place in the box rather than of a whole token.
    layout_head: int = 0

    def __post_init__(self) -> None:
        # JSON gives lists; keep the dataclass hashable and comparable.
        object.__setattr__(self, "patch", tuple(int(p) for p in self.patch))
        if len(self.patch) != 3 or min(self.patch) < 1:
            raise InvalidParameter("patch", self.patch, "three positive ints (p_t, p_h, p_w)")
        for name in ("in_channels", "width", "depth", "heads", "text_dim"):
            if getattr(self, name) < 1:
                raise InvalidParameter(name, getattr(self, name), "a positive int")
        if self.width % self.heads:
            raise InvalidParameter("heads", self.heads, f"a divisor of width={self.width}")
        if self.head_dim % 2 or self.head_dim < 6:
            raise InvalidParameter(
                "heads", self.heads, "a count giving an even head dim ≥ 6 (for 3D RoPE)"
            )
        if self.mlp_ratio <= 0:
            raise InvalidParameter("mlp_ratio", self.mlp_ratio, "> 0")
        if self.prediction not in ("v", "x"):
            raise InvalidParameter("prediction", self.prediction, "'v' (velocity) or 'x' (clean latents)")
        if not 0 < self.t_floor < 1:
            raise InvalidParameter("t_floor", self.t_floor, "between 0 and 1")
        if self.layout_head < 0 or (self.layout_head and not self.layout_dim):
            raise InvalidParameter("layout_head", self.layout_head, "0, or a positive width with layout_dim > 0")

    @property
    def head_dim(self) -> int:
        return self.width // self.heads

    @property
    def mlp_width(self) -> int:
        return int(self.width * self.mlp_ratio)

    @property
    def patch_volume(self) -> int:
        return self.patch[0] * self.patch[1] * self.patch[2]

    @property
    def input_channels(self) -> int:
        """Channels the patch embedding reads: x_t, the reference latents and the mask."""
        return 2 * self.in_channels + 1

    def to_dict(self) -> dict:
        d = asdict(self)
        d["patch"] = list(self.patch)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> DiTConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise InvalidParameter("DiTConfig", unknown, f"keys among {sorted(known)}")
        return cls(**d)

    def tokens(self, latent: tuple[int, int, int]) -> int:
        """Token count for latents of ``(t, h, w)`` (t padded up to a multiple of p_t)."""
        return math.prod(_grid(latent, self.patch))


# ------------------------------------------------------------------------------------------
# Patchify
# ------------------------------------------------------------------------------------------


def _grid(latent: tuple[int, int, int], patch: tuple[int, int, int]) -> tuple[int, int, int]:
    t, h, w = latent
    pt, ph, pw = patch
    if h % ph or w % pw:
        raise InvalidParameter(
            "latent size", (h, w), f"height a multiple of {ph} and width a multiple of {pw}"
        )
    return -(-t // pt), h // ph, w // pw


def pad_time(x: Tensor, multiple: int, dim: int = 2) -> Tensor:
    """``x`` padded along ``dim`` (time) at the end up to a multiple of ``multiple`` frames by
    repeating its last frame: a padded frame is the last frame held."""
    pad = -x.shape[dim] % multiple
    if not pad:
        return x
    last = x.narrow(dim, x.shape[dim] - 1, 1)
    return torch.cat([x, last.expand(*[pad if i == dim else -1 for i in range(x.dim())])], dim=dim)


def patchify(x: Tensor, patch: tuple[int, int, int]) -> tuple[Tensor, tuple[int, int, int]]:
    """Cut ``(B, C, t, h, w)`` into spacetime patches: ``(B, N, C·p_t·p_h·p_w)`` and the grid.

    Time is padded at the *end* up to a multiple of ``p_t`` by repeating the last latent frame
    (all channels, mask channel included); ``unpatchify`` crops it off. The trainer and the
    pipeline pad before noising instead (:func:`pad_time`), so every frame the DiT sees has
    its own noise and every output frame is trained: a still is a held two-frame clip.
    Height and width must divide exactly (sizes are multiples of 16, so latents are multiples
    of 2): they raise instead of being silently cropped.
    Token order is raster over (t, h, w); features are ordered (C, p_t, p_h, p_w).
    """
    b, c, t, h, w = x.shape
    pt, ph, pw = patch
    gt, gh, gw = _grid((t, h, w), patch)
    x = pad_time(x, pt)  # (B, C, gt·pt, h, w)
    x = x.reshape(b, c, gt, pt, gh, ph, gw, pw)
    x = x.permute(0, 2, 4, 6, 1, 3, 5, 7)  # (B, gt, gh, gw, C, pt, ph, pw)
    return x.reshape(b, gt * gh * gw, c * pt * ph * pw), (gt, gh, gw)


def unpatchify(
    tokens: Tensor, grid: tuple[int, int, int], patch: tuple[int, int, int], frames: int
) -> Tensor:
    """Inverse of ``patchify``: ``(B, N, C·p_t·p_h·p_w)`` → ``(B, C, frames, h, w)``."""
    b, n, d = tokens.shape
    gt, gh, gw = grid
    pt, ph, pw = patch
    c = d // (pt * ph * pw)
    x = tokens.reshape(b, gt, gh, gw, c, pt, ph, pw)
    x = x.permute(0, 4, 1, 5, 2, 6, 3, 7)  # (B, C, gt, pt, gh, ph, gw, pw)
    x = x.reshape(b, c, gt * pt, gh * ph, gw * pw)
    return x[:, :, :frames]  # crop the time padding


# ------------------------------------------------------------------------------------------
# 3D rotary position embedding
# ------------------------------------------------------------------------------------------


def rope_axis_dims(head_dim: int) -> tuple[int, int, int]:
    """Split an even head dim over (t, h, w): h and w get equal even shares, t the rest.

    64 → (24, 20, 20); 128 → (44, 42, 42). Time gets the remainder because durations vary
    more than sizes do.
    """
    hw = 2 * (head_dim // 6)
    return head_dim - 2 * hw, hw, hw


def grid_positions(grid: tuple[int, int, int], device: torch.device | None = None) -> Tensor:
    """Integer (t, h, w) coordinates of every token in raster order: ``(N, 3)`` float."""
    axes = [torch.arange(n, device=device, dtype=torch.float32) for n in grid]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, 3)


def rope_angles(positions: Tensor, head_dim: int, theta: float) -> Tensor:
    """Rotations for ``positions (N, 3)`` as unit complex numbers ``(N, head_dim / 2)``.

    Each axis owns a contiguous slice of the head dim; within it, channel pair ``i`` of an
    axis with ``d`` dims rotates at frequency ``theta^(−2i/d)`` times the coordinate.
    """
    parts = []
    for axis, dim in enumerate(rope_axis_dims(head_dim)):
        freqs = theta ** (-torch.arange(0, dim, 2, device=positions.device, dtype=torch.float32) / dim)
        parts.append(positions[:, axis, None].float() * freqs)  # (N, dim / 2)
    angles = torch.cat(parts, dim=-1)  # (N, head_dim / 2)
    return torch.polar(torch.ones_like(angles), angles)  # (N, head_dim / 2) complex64


def apply_rope(x: Tensor, rope: Tensor) -> Tensor:
    """Rotate channel pairs ``(2i, 2i+1)`` of ``x (B, H, N, head_dim)`` by ``rope``'s angles.

    A pair is read as one complex number, so the rotation is a single complex multiply —
    one pass over memory instead of the six of the cos/sin form.
    """
    pairs = torch.view_as_complex(x.float().unflatten(-1, (-1, 2)))  # (B, H, N, hd/2) complex
    return torch.view_as_real(pairs * rope).flatten(-2).type_as(x)  # (B, H, N, head_dim)


# ------------------------------------------------------------------------------------------
# Embedders
# ------------------------------------------------------------------------------------------


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return torch.addcmul(shift, x, 1 + scale)  # x·(1 + scale) + shift in one pass


class TimestepEmbedder(nn.Module):
    """Sinusoidal embedding of ``t ∈ [0, 1]`` (scaled by 1000, as in DiT) and an MLP."""

    def __init__(self, width: int, frequency_dim: int = 256) -> None:
        super().__init__()
        self.frequency_dim = frequency_dim
        self.mlp = nn.Sequential(
            nn.Linear(frequency_dim, width), nn.SiLU(), nn.Linear(width, width)
        )

    def forward(self, t: Tensor) -> Tensor:
        half = self.frequency_dim // 2
        freqs = torch.exp(
            -math.log(10_000) * torch.arange(half, device=t.device, dtype=torch.float32) / half
        )
        args = 1000.0 * t.float()[:, None] * freqs[None]  # (B, half)
        emb = torch.cat([args.cos(), args.sin()], dim=-1)  # (B, frequency_dim)
        return self.mlp(emb.to(self.mlp[0].weight.dtype))  # (B, D)


# ------------------------------------------------------------------------------------------
# Attention
# ------------------------------------------------------------------------------------------


# Token-wise linear layers inside the blocks carry no bias: on CPU `addmm` first copies the
# broadcast bias into its output — an extra pass over every activation, ~5-8 % of a tiny
# model's forward — and the adaLN shift already offsets every layer's input per sample.
# QK-norm (RMSNorm over each head, as SD3 and Flux) keeps attention logits bounded in large
# models trained in low precision. It costs ~20 % of a tiny model's CPU forward (a copy of the
# strided q/k plus four unfused passes over 64-wide rows), so the CPU presets leave it off.


def _qk_norm(head_dim: int, enabled: bool) -> nn.Module:
    return nn.RMSNorm(head_dim, eps=1e-6) if enabled else nn.Identity()


class SelfAttention(nn.Module):
    """Multi-head self-attention over spacetime tokens, QK-norm, 3D RoPE, SDPA."""

    def __init__(self, width: int, heads: int, qk_norm: bool) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.q_norm = _qk_norm(width // heads, qk_norm)
        self.k_norm = _qk_norm(width // heads, qk_norm)
        self.proj = nn.Linear(width, width, bias=False)

    def forward(self, x: Tensor, rope: Tensor) -> Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).view(b, n, 3, self.heads, d // self.heads)  # (B, N, 3, H, hd)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 × (B, H, N, hd)
        q = apply_rope(self.q_norm(q), rope)  # (B, H, N, hd)
        k = apply_rope(self.k_norm(k), rope)  # (B, H, N, hd)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, H, N, hd)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))  # (B, N, D)


class CrossAttention(nn.Module):
    """Video tokens attend to text tokens (plus the always-present null token)."""

    def __init__(self, width: int, heads: int, qk_norm: bool) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(width, width, bias=False)
        self.kv = nn.Linear(width, 2 * width, bias=False)
        self.q_norm = _qk_norm(width // heads, qk_norm)
        self.k_norm = _qk_norm(width // heads, qk_norm)
        self.proj = nn.Linear(width, width, bias=False)

    def forward(self, x: Tensor, context: Tensor, context_mask: Tensor) -> Tensor:
        b, n, d = x.shape
        hd = d // self.heads
        q = self.q_norm(self.q(x).view(b, n, self.heads, hd).transpose(1, 2))  # (B, H, N, hd)
        kv = self.kv(context).view(b, -1, 2, self.heads, hd)  # (B, L, 2, H, hd)
        k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)  # 2 × (B, H, L, hd)
        k = self.k_norm(k)
        mask = context_mask[:, None, None, :]  # (B, 1, 1, L) bool, True = attend
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, H, N, hd)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))  # (B, N, D)


# ------------------------------------------------------------------------------------------
# Block and final layer
# ------------------------------------------------------------------------------------------


class DiTBlock(nn.Module):
    """adaLN-Zero self-attention, cross-attention to text, adaLN-Zero MLP."""

    def __init__(self, config: DiTConfig) -> None:
        super().__init__()
        d = config.width
        self.norm1 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.attn = SelfAttention(d, config.heads, config.qk_norm)
        self.norm2 = nn.LayerNorm(d, elementwise_affine=True, eps=1e-6)
        self.cross = CrossAttention(d, config.heads, config.qk_norm)
        self.norm3 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(
            nn.Linear(d, config.mlp_width, bias=False),
            nn.GELU(),  # exact (erf): ~3× cheaper than the tanh form on CPU, same quality
            nn.Linear(config.mlp_width, d, bias=False),
        )
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(d, 6 * d))

    def forward(
        self, x: Tensor, c: Tensor, context: Tensor, context_mask: Tensor, rope: Tensor
    ) -> Tensor:
        mods = self.adaLN_modulation(c)[:, None].chunk(6, dim=-1)  # 6 × (B, 1, D)
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mods
        h = self.attn(modulate(self.norm1(x), shift_msa, scale_msa), rope)  # (B, N, D)
        x = torch.addcmul(x, gate_msa, h)  # x + gate · h
        x = x + self.cross(self.norm2(x), context, context_mask)  # (B, N, D)
        h = self.mlp(modulate(self.norm3(x), shift_mlp, scale_mlp))  # (B, N, D)
        return torch.addcmul(x, gate_mlp, h)  # (B, N, D)


class FinalLayer(nn.Module):
    def __init__(self, width: int, out_features: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(width, out_features)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))

    def features(self, x: Tensor, c: Tensor) -> Tensor:
        """The normalised, modulated tokens the output linear reads: ``(B, N, D)``."""
        shift, scale = self.adaLN_modulation(c)[:, None].chunk(2, dim=-1)  # 2 × (B, 1, D)
        return modulate(self.norm(x), shift, scale)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        return self.linear(self.features(x, c))  # (B, N, p_t·p_h·p_w·C)


class CellHead(nn.Module):
    """Per latent cell: an MLP over the cell's share of its token's features and the cell's box
    maps, added to the final layer's output. Its last layer starts at zero (the DiT unchanged)."""

    CELL_FEATURES = 16  # each cell's slice of its token

    def __init__(self, width: int, patch_volume: int, maps: int, hidden: int, out_channels: int) -> None:
        super().__init__()
        self.token_to_cells = nn.Linear(width, self.CELL_FEATURES * patch_volume)
        self.mlp = nn.Sequential(
            nn.Linear(self.CELL_FEATURES + maps, hidden), nn.SiLU(), nn.Linear(hidden, out_channels)
        )

    def forward(self, features: Tensor, maps: Tensor, grid: tuple[int, int, int], patch: tuple[int, int, int]) -> Tensor:
        """``features (B, N, D)``, ``maps (B, M, t, h, w)`` → ``(B, C, t, h, w)``."""
        cells = unpatchify(self.token_to_cells(features), grid, patch, maps.shape[2])  # (B, F, t, h, w)
        x = torch.cat([cells, maps.to(cells.dtype)], dim=1).movedim(1, -1)  # (B, t, h, w, F + M)
        return self.mlp(x).movedim(-1, 1)  # (B, C, t, h, w)


# ------------------------------------------------------------------------------------------
# The model
# ------------------------------------------------------------------------------------------


class DiT(nn.Module):
    """Velocity predictor ``v(x_t, t | text, cond_mask, cond_latents)`` on video latents."""

    def __init__(self, config: DiTConfig) -> None:
        super().__init__()
        self.config = config
        self.grad_checkpointing = config.grad_checkpointing
        d, c = config.width, config.in_channels
        self.x_embedder = nn.Linear(config.input_channels * config.patch_volume, d)
        self.t_embedder = TimestepEmbedder(d)
        self.pooled_embedder = nn.Sequential(
            nn.Linear(config.text_dim, d), nn.SiLU(), nn.Linear(d, d)
        )
        self.text_embedder = nn.Sequential(nn.LayerNorm(config.text_dim), nn.Linear(config.text_dim, d))
        self.null_text = nn.Parameter(torch.zeros(1, 1, d))
        self.blocks = nn.ModuleList(DiTBlock(config) for _ in range(config.depth))
        self.final_layer = FinalLayer(d, c * config.patch_volume)
        if config.layout_dim:
            # Box maps in, ControlNet style: per cell, the sum over the plan's entries (objects,
            # then occluders) of occupancy × [projected phrase, position in the box (u, v), 1],
            # patchified like the latents and added to the tokens through a zero-initialised
            # linear, so a text-only checkpoint starts unchanged and the layout's influence is
            # learned from zero.
            self.layout_phrase = nn.Linear(config.text_dim, config.layout_dim)
            self.layout_embedder = nn.Linear((config.layout_dim + 3) * config.patch_volume, d)
        if config.layout_head:
            self.cell_head = CellHead(d, config.patch_volume, config.layout_dim + 3, config.layout_head, c)
        self.initialize_weights()

    def initialize_weights(self) -> None:
        # Xavier for every linear layer, zero biases (as DiT).
        def _basic_init(module: nn.Module) -> None:
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

        self.apply(_basic_init)  # x_embedder included: a flattened conv kernel, as in DiT
        nn.init.normal_(self.t_embedder.mlp[0].weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[2].weight, std=0.02)
        nn.init.normal_(self.pooled_embedder[0].weight, std=0.02)
        nn.init.normal_(self.pooled_embedder[2].weight, std=0.02)
        nn.init.normal_(self.null_text, std=0.02)
        for block in self.blocks:
            # adaLN-Zero: every gate, shift and scale starts at 0, so each block is the identity.
            nn.init.zeros_(block.adaLN_modulation[-1].weight)
            nn.init.zeros_(block.adaLN_modulation[-1].bias)
            # Cross-attention has no gate: zero its output projection for the same reason.
            nn.init.zeros_(block.cross.proj.weight)
        # Zero final layer: the model predicts v = 0 at init.
        nn.init.zeros_(self.final_layer.adaLN_modulation[-1].weight)
        nn.init.zeros_(self.final_layer.adaLN_modulation[-1].bias)
        nn.init.zeros_(self.final_layer.linear.weight)
        nn.init.zeros_(self.final_layer.linear.bias)
        if self.config.layout_dim:
            nn.init.zeros_(self.layout_embedder.weight)
            nn.init.zeros_(self.layout_embedder.bias)
        if self.config.layout_head:
            nn.init.zeros_(self.cell_head.mlp[-1].weight)
            nn.init.zeros_(self.cell_head.mlp[-1].bias)

    def forward(
        self,
        x: Tensor,
        t: Tensor,
        *,
        text_states: Tensor,
        text_mask: Tensor | None = None,
        text_pooled: Tensor | None = None,
        cond_mask: Tensor | None = None,
        cond_latents: Tensor | None = None,
        layout_occupancy: Tensor | None = None,
        layout_uv: Tensor | None = None,
        layout_phrases: Tensor | None = None,
    ) -> Tensor:
        """Predict the velocity for ``x (B, C, t, h, w)`` at times ``t (B,)`` in [0, 1].

        ``text_states (B, L, text_dim)``; ``text_mask (B, L)`` bool, True for real tokens
        (default all True); ``text_pooled (B, text_dim)`` (default: the masked mean of the
        states); ``cond_mask (B, t)`` in {0, 1} and ``cond_latents (B, C, t, h, w)`` (default:
        nothing conditioned). A layout-grounded model (``layout_dim > 0``) also takes box maps
        (:func:`cinepatch.planning.raster.rasterize`): ``layout_occupancy (B, N, t, h, w)``,
        ``layout_uv (B, N, 2, t, h, w)`` and the entries' (objects', then occluders') pooled phrase
        embeddings ``layout_phrases (B, N, text_dim)``; none given (or all occupancy zero) is the text-only
        mode. Returns ``(B, C, t, h, w)``.
        """
        cfg = self.config
        x_t = x
        b, c, frames, h, w = x.shape
        if c != cfg.in_channels:
            raise InvalidParameter("x channels", c, f"{cfg.in_channels} (config.in_channels)")
        t = t.reshape(-1).expand(b) if t.numel() == 1 else t
        if text_mask is None:
            text_mask = torch.ones(text_states.shape[:2], dtype=torch.bool, device=x.device)
        text_mask = text_mask.bool()
        if cond_mask is None:
            cond_mask = x.new_zeros(b, frames)
        if cond_latents is None:
            cond_latents = torch.zeros_like(x)

        # Conditioning primitive as input channels.
        mask = cond_mask.to(x.dtype)[:, None, :, None, None].expand(b, 1, frames, h, w)
        inp = torch.cat([x, cond_latents.to(x.dtype), mask], dim=1)  # (B, 2C+1, t, h, w)
        tokens, grid = patchify(inp, cfg.patch)  # (B, N, input_channels·p_t·p_h·p_w)
        x = self.x_embedder(tokens)  # (B, N, D)
        maps = None
        if layout_occupancy is not None:
            maps = self._layout_maps(layout_occupancy, layout_uv, layout_phrases, x.dtype)  # (B, k+3, t, h, w)
            x = x + self.layout_embedder(patchify(maps, cfg.patch)[0])  # (B, N, D)
        rope = rope_angles(grid_positions(grid, x.device), cfg.head_dim, cfg.rope_theta)
        # rope: (N, head_dim / 2) complex

        # Global conditioning vector: timestep + pooled text.
        if text_pooled is None:
            weights = text_mask.to(text_states.dtype)[..., None]  # (B, L, 1)
            text_pooled = (text_states * weights).sum(1) / weights.sum(1).clamp_min(1.0)
        c_vec = self.t_embedder(t) + self.pooled_embedder(text_pooled.to(x.dtype))  # (B, D)

        # Text tokens for cross-attention, with the null token always attendable.
        context = self.text_embedder(text_states.to(x.dtype))  # (B, L, D)
        context = torch.cat([self.null_text.expand(b, 1, -1), context], dim=1)  # (B, 1+L, D)
        context_mask = F.pad(text_mask, (1, 0), value=True)  # (B, 1+L)

        for block in self.blocks:
            if self.grad_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, c_vec, context, context_mask, rope, use_reentrant=False)
            else:
                x = block(x, c_vec, context, context_mask, rope)  # (B, N, D)
        features = self.final_layer.features(x, c_vec)  # (B, N, D)
        out = unpatchify(self.final_layer.linear(features), grid, cfg.patch, frames)  # (B, C, t, h, w)
        if cfg.layout_head:  # text-only mode: the cells' maps are zeros
            if maps is None:
                maps = x.new_zeros(b, cfg.layout_dim + 3, frames, h, w)
            out = out + self.cell_head(features, maps, grid, cfg.patch)
        if cfg.prediction == "x":  # out is x̂₀; x_t = (1 − t)·x₀ + t·noise gives v = (x_t − x̂₀) / t
            return (x_t - out) / t.to(out.dtype).clamp_min(cfg.t_floor).view(-1, 1, 1, 1, 1)
        return out

    def _layout_maps(self, occupancy: Tensor, uv: Tensor | None, phrases: Tensor | None, dtype: torch.dtype) -> Tensor:
        """Box maps → per cell, summed over objects, occupancy × [projected phrase, u, v, 1]:
        ``(B, k + 3, t, h, w)``."""
        cfg = self.config
        if not cfg.layout_dim:
            raise InvalidParameter("layout_occupancy", "box maps", "None: this DiT was built without layout_dim")
        if uv is None or phrases is None:
            raise InvalidParameter("layout_uv / layout_phrases", None, "both, with layout_occupancy")
        occupancy = occupancy.to(dtype)  # (B, n, t, h, w)
        phrase = self.layout_phrase(phrases.to(dtype))  # (B, n, k)
        maps = torch.cat(
            [
                torch.einsum("bnk,bnthw->bkthw", phrase, occupancy),
                torch.einsum("bncthw,bnthw->bcthw", uv.to(dtype), occupancy),
                occupancy.sum(1, keepdim=True),
            ],
            dim=1,
        )  # (B, k + 3, t, h, w)
        return maps


# ------------------------------------------------------------------------------------------
# Named sizes
# ------------------------------------------------------------------------------------------

# in_channels is the VAE's latent channel count; a pipeline building a model for another VAE
# uses dataclasses.replace(PRESETS[name], in_channels=vae.config.latent_channels).
# tiny: a CPU model. Few tokens (2×2 spatial patches on 8×-compressed latents: a 64×64 clip of
# 17 frames is 5×4×4 = 80 tokens) and fixed 3D RoPE positions, so a few-million parameter model
# can afford many steps and still see the whole clip in every attention.
# world: the shipped default model on the world VAE's latents (8 channels, 4× in space, every
# frame kept): 2×4×4 patches keep a 128×128 clip of 33 frames at 17×8×8 tokens; a patch holds
# 256 numbers, the width, so it predicts clean latents ("x"); it reads scene plans as box maps
# (layout_dim) and draws each latent cell of a box with its cell head (layout_head).
PRESETS: dict[str, DiTConfig] = {
    "tiny": DiTConfig(16, (1, 2, 2), width=256, depth=6, heads=4, text_dim=384, qk_norm=False),
    "world": DiTConfig(8, (2, 4, 4), width=256, depth=6, heads=4, text_dim=384, qk_norm=True, prediction="x",
                       layout_dim=32, layout_head=64),
    "small": DiTConfig(16, (1, 2, 2), width=384, depth=12, heads=6, text_dim=384, qk_norm=False),
    "base": DiTConfig(16, (1, 2, 2), width=768, depth=12, heads=12, text_dim=768),
    "large": DiTConfig(16, (1, 2, 2), width=1024, depth=24, heads=16, text_dim=4096),
    "xl": DiTConfig(16, (1, 2, 2), width=2048, depth=28, heads=16, text_dim=4096),
    "xxl": DiTConfig(16, (1, 2, 2), width=4096, depth=40, heads=32, text_dim=4096),
}


# ------------------------------------------------------------------------------------------
# Counting (no weights allocated)
# ------------------------------------------------------------------------------------------


def count_params(config: DiTConfig) -> int:
    """Exact parameter count, from a model built on the meta device (no memory used)."""
    with torch.device("meta"):
        model = DiT(config)
    return sum(p.numel() for p in model.parameters())


def forward_flops(
    config: DiTConfig, latent: tuple[int, int, int], *, text_len: int = 77, batch: int = 1
) -> dict[str, int | float]:
    """Matmul FLOPs (2 per multiply-add) of one forward pass, from shapes alone.

    Counts every linear layer and both attention products (QKᵀ and AV); elementwise work
    (norms, RoPE, GELU, softmax) is left out, as is customary. Returns ``tokens``,
    ``flops`` (whole batch), ``flops_per_token`` (linear layers only — the number that does
    not depend on clip length) and ``attention_flops``.
    """
    d, f, depth = config.width, config.mlp_width, config.depth
    n = config.tokens(latent)
    c_in = config.input_channels * config.patch_volume
    c_out = config.in_channels * config.patch_volume
    ctx = text_len + 1  # the null token
    # Per video token, multiply-adds of the linear layers.
    layout = (config.layout_dim + 3) * config.patch_volume * d if config.layout_dim else 0
    per_token = c_in * d + layout + depth * (3 * d * d + d * d + d * d + d * d + 2 * d * f) + d * c_out
    # Text tokens: the projection of the L prompt tokens, then K and V of those and the null
    # token in every block.
    text = text_len * config.text_dim * d + ctx * depth * 2 * d * d
    # Per sample: timestep MLP, pooled-text MLP, adaLN in every block and the final layer.
    per_sample = (256 * d + d * d) + (config.text_dim * d + d * d) + depth * 6 * d * d + 2 * d * d
    # Attention products per sample: self (N×N) and cross (N×ctx), QKᵀ and AV each N·M·D.
    attention = depth * (2 * n * n * d + 2 * n * ctx * d)
    macs = n * per_token + text + per_sample + attention
    return {
        "tokens": n,
        "flops": 2 * macs * batch,
        "flops_per_token": 2 * per_token,
        "attention_flops": 2 * attention * batch,
    }


# ------------------------------------------------------------------------------------------
# Checkpoint surgery: start a DiT of another patch size or prediction from a trained one
# ------------------------------------------------------------------------------------------


def _split_patches(state: dict[str, Tensor], old: tuple[int, ...], new: tuple[int, ...], channels: int) -> dict[str, Tensor]:
    """Re-cut the patch layers to smaller patches: each new side must divide the old one
    (e.g. [4,4,4] → [2,4,4]: twice the tokens in time, finer motion; [2,4,4] → [2,2,2]: four
    times the tokens in space, finer shapes). The input embedding of a small patch is the sum
    of the big patch's sub-kernels — on a clip that is constant over each big patch, each small
    token embeds as the big one did — and each output row is the mean of the big patch's rows
    for the same place in the small patch. Everything else (the blocks, RoPE by grid index) is
    shape-free and loads as is; training re-learns the rest."""
    if len(new) != 3 or any(o % n for o, n in zip(old, new)):
        raise InvalidParameter("patch", list(new), f"each side a divisor of the saved patch {list(old)}")
    (kt, kh, kw), (pt, ph, pw) = (o // n for o, n in zip(old, new)), new
    state = dict(state)
    w = state["x_embedder.weight"]  # (D, C_in·p_t·p_h·p_w), features ordered (C_in, p_t, p_h, p_w)
    c_in = w.shape[1] // math.prod(old)
    w = w.reshape(w.shape[0], c_in, kt, pt, kh, ph, kw, pw)
    state["x_embedder.weight"] = w.sum((2, 4, 6)).reshape(w.shape[0], -1)
    for name in ("final_layer.linear.weight", "final_layer.linear.bias"):
        t = state[name]  # (C·p_t·p_h·p_w[, D]), rows ordered (C, p_t, p_h, p_w)
        rest = t.shape[1:]
        t = t.reshape(channels, kt, pt, kh, ph, kw, pw, *rest)
        state[name] = t.mean((1, 3, 5)).reshape(-1, *rest)
    return state


def recut(
    model: DiT, *, patch: tuple[int, int, int] | None = None, prediction: str | None = None, layout_head: int | None = None
) -> DiT:
    """A new DiT that starts from ``model``'s weights with smaller patches (see
    ``_split_patches``), another ``prediction`` and/or a per-cell ``layout_head``. A changed
    prediction starts the output layer from zero again, as a new one: the body's features carry
    over, what the last layer drew from them does not. A new head starts at zero: the model's
    output is unchanged until it trains."""
    old = model.config
    config = replace(
        old, patch=tuple(patch) if patch is not None else old.patch, prediction=prediction or old.prediction,
        layout_head=old.layout_head if layout_head is None else layout_head,
    )
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if config.patch != old.patch:
        state = _split_patches(state, old.patch, config.patch, old.in_channels)
    new = DiT(config)
    if config.layout_head != old.layout_head:  # a new head (its own init), or none
        state = {k: v for k, v in state.items() if not k.startswith("cell_head.")}
        state.update({k: v for k, v in new.state_dict().items() if k.startswith("cell_head.")})
    new.load_state_dict(state)
    if config.prediction != old.prediction:
        final = new.final_layer
        for layer in (final.adaLN_modulation[-1], final.linear):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
    return new.eval()
