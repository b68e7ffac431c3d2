"""Causal 3D video VAE: pixels (B, 3, T, H, W) in −1..1 ↔ latents (B, C, t, h, w).

Read top to bottom: causal conv → norm → residual block → down/up-sampling → encoder →
decoder → the model (encode/decode, chunking over time, tiling over space, loss,
save/load) → named sizes in ``PRESETS``.

Why causal: every convolution pads time only on the past, so with 4× temporal compression
latent frame ``j`` sees pixel frames ``≤ 4j``. Frame 0 is therefore encoded alone, a still
image is a 1-frame video, and ``T = 1 + 4k`` frames map to ``t = 1 + k`` latent frames (the
``world`` preset has no temporal compression: it is per frame). The same property lets us
stream a long video through the network in temporal chunks: each causal conv carries its
last few input frames to the next chunk, which makes the chunked result equal the unchunked
one while peak memory stays that of one chunk.

Normalisation is RMS over channels at each (t, h, w) position — not GroupNorm — because
statistics pooled over time would leak the future into the past, and statistics pooled over
space would make spatial tiles disagree at their seams.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from cinepatch.errors import InvalidParameter, ModelError
from cinepatch.io.atomic import atomic_write

__all__ = ["VAEConfig", "PRESETS", "CausalVAE"]


@dataclass(frozen=True)
class VAEConfig:
    """Sizes of a causal video VAE. The defaults are a causal 3D VAE (4× in time, 8× in
    space); the per-frame ``world`` VAE the default model uses is in ``PRESETS``."""

    latent_channels: int = 8
    temporal_compression: int = 4  # 1 + 4k frames → 1 + k latent frames
    spatial_compression: int = 8  # H, W → H/8, W/8
    # Pixel-unshuffle stem: each patch_size² block of pixels becomes one position with
    # 3·patch_size² channels before the first conv (and the mirror at the decoder's end), so
    # no conv runs at full resolution. The rest of the compression is done by the levels.
    patch_size: int = 1
    # Frames each conv sees (causal). 1 makes the VAE per-frame — no temporal mixing, so a
    # clip of any length encodes like its frames one by one (needs temporal_compression 1).
    # With 3, a model trained on short clips must still see clips longer than its temporal
    # receptive field, or frames past it (which never saw zero padding) decode badly.
    temporal_kernel: int = 3
    # One width per resolution level: log2(spatial_compression / patch_size) + 1 entries.
    widths: tuple[int, ...] = (16, 32, 64, 64)
    blocks_per_level: int = 1
    in_channels: int = 3
    kl_weight: float = 1e-5  # small: we want an autoencoder with a well-behaved latent
    l2_weight: float = 1.0  # reconstruction = L1 + l2_weight · MSE

    def __post_init__(self) -> None:
        total = round(math.log2(self.spatial_compression))
        if 2**total != self.spatial_compression or total < 1:
            raise InvalidParameter("spatial_compression", self.spatial_compression, "a power of 2 ≥ 2")
        if self.patch_size < 1 or self.spatial_compression % self.patch_size or self.patch_size == self.spatial_compression:
            raise InvalidParameter(
                "patch_size", self.patch_size, f"a power of 2 below spatial_compression ({self.spatial_compression})"
            )
        levels = self.levels
        if len(self.widths) != levels + 1:
            raise InvalidParameter(
                "widths", self.widths, f"{levels + 1} entries (log2(spatial_compression / patch_size) + 1)"
            )
        if self.temporal_kernel not in (1, 3) or (self.temporal_kernel == 1 and self.temporal_compression != 1):
            raise InvalidParameter("temporal_kernel", self.temporal_kernel, "3, or 1 with temporal_compression 1")
        t_levels = round(math.log2(self.temporal_compression)) if self.temporal_compression >= 1 else -1
        if 2**t_levels != self.temporal_compression or not 0 <= t_levels <= levels:
            raise InvalidParameter(
                "temporal_compression", self.temporal_compression, f"a power of 2 from 1 to {2**levels}"
            )

    @property
    def levels(self) -> int:
        """How many strided downsamplings follow the stem."""
        return round(math.log2(self.spatial_compression // self.patch_size))

    @property
    def temporal_down(self) -> tuple[bool, ...]:
        """Which spatial downsamplings also halve time: the last log2(temporal_compression)."""
        levels = self.levels
        t_levels = round(math.log2(self.temporal_compression))
        return tuple(i >= levels - t_levels for i in range(levels))


# --------------------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------------------


class CausalConv3d(nn.Conv3d):
    """A 3D convolution that pads time only on the past (zeros) and space symmetrically.

    In streaming mode it keeps the last ``kernel_t − stride_t`` frames of its padded input
    and prepends them to the next chunk instead of zeros, so chunk by chunk equals all at once
    as long as later chunks hold a multiple of ``stride_t`` frames.
    """

    def __init__(
        self, cin: int, cout: int, kernel: tuple[int, int, int] = (3, 3, 3), stride: tuple[int, int, int] = (1, 1, 1)
    ) -> None:
        kt, kh, kw = kernel
        super().__init__(cin, cout, kernel, stride=stride, padding=(0, kh // 2, kw // 2))
        self.time_pad = kt - 1
        self.carry_len = kt - stride[0]
        self.streaming = False
        self.carry: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.carry is not None:
            x = torch.cat([self.carry, x], dim=2)  # past frames from the previous chunk
        else:
            x = F.pad(x, (0, 0, 0, 0, self.time_pad, 0))  # zeros before frame 0
        if self.streaming:
            self.carry = x[:, :, x.shape[2] - self.carry_len :].clone()
        if x.device.type == "cpu" and x.dtype == torch.float32 and torch.backends.mkldnn.is_available():
            # PyTorch's heuristic sends a batch-1 conv3d with B·C·T·H ≤ 20480 to its slow
            # vol2col kernel, which made short temporal chunks ~4× slower than one long pass;
            # oneDNN is what it picks for larger inputs anyway.
            return torch.mkldnn_convolution(x, self.weight, self.bias, self.padding, self.stride, self.dilation, 1)
        return super().forward(x)


class ChannelRMSNorm(nn.Module):
    """RMS norm over channels at each (t, h, w): causal in time and local in space."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rms = torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + self.eps)
        return x * rms * self.weight.view(1, -1, 1, 1, 1)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, *, kt: int = 3) -> None:
        super().__init__()
        self.norm1 = ChannelRMSNorm(cin)
        self.conv1 = CausalConv3d(cin, cout, (kt, 3, 3))
        self.norm2 = ChannelRMSNorm(cout)
        self.conv2 = CausalConv3d(cout, cout, (kt, 3, 3))
        self.skip = nn.Conv3d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (B, cout, T, H, W)
        h = self.conv2(F.silu(self.norm2(h)))  # (B, cout, T, H, W)
        return self.skip(x) + h  # (B, cout, T, H, W)


class Downsample(nn.Module):
    """Halve H and W (and T when ``time``) with one strided causal conv.

    Time: kernel 3, stride 2, two zero frames before frame 0 → 1 + 2m frames become 1 + m and
    output frame j sees input frames 2j − 2 … 2j.
    """

    def __init__(self, cin: int, cout: int, *, time: bool, kt: int = 3) -> None:
        super().__init__()
        self.conv = CausalConv3d(cin, cout, (kt, 3, 3), stride=(2 if time else 1, 2, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)  # (B, cout, T', H/2, W/2), T' = 1 + (T − 1)/2 when time


class Upsample(nn.Module):
    """Double H and W (and T when ``time``): the mirror of Downsample.

    Time: a causal conv makes 2·C channels per frame, which become two frames; the very first
    output frame is dropped so 1 + m frames become 1 + 2m (latent frame 0 ↔ pixel frame 0).
    """

    def __init__(self, cin: int, cout: int, *, time: bool, kt: int = 3) -> None:
        super().__init__()
        self.time_conv = CausalConv3d(cin, 2 * cin, (kt, 3, 3)) if time else None
        self.conv = CausalConv3d(cin, cout, (kt, 3, 3))
        self.streaming = False
        self.seen = False  # streaming: has the chunk holding frame 0 gone through?

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.time_conv is not None:
            B, C, T, H, W = x.shape
            x = self.time_conv(x)  # (B, 2C, T, H, W)
            x = x.view(B, 2, C, T, H, W).permute(0, 2, 3, 1, 4, 5).reshape(B, C, 2 * T, H, W)  # (B, C, 2T, H, W)
            if not self.seen:
                x = x[:, :, 1:]  # (B, C, 2T − 1, H, W)
            self.seen = self.streaming
        x = F.interpolate(x, scale_factor=(1, 2, 2), mode="nearest")  # (B, C, T', 2H, 2W)
        return self.conv(x)  # (B, cout, T', 2H, 2W)


def _unshuffle(x: torch.Tensor, p: int) -> torch.Tensor:
    """(B, C, T, H, W) → (B, C·p², T, H/p, W/p): each p×p pixel block becomes channels."""
    if p == 1:
        return x
    B, C, T, H, W = x.shape
    x = x.view(B, C, T, H // p, p, W // p, p).permute(0, 1, 4, 6, 2, 3, 5)  # (B, C, p, p, T, H/p, W/p)
    return x.reshape(B, C * p * p, T, H // p, W // p)


def _shuffle(x: torch.Tensor, p: int) -> torch.Tensor:
    """The inverse of ``_unshuffle``: (B, C·p², T, h, w) → (B, C, T, h·p, w·p)."""
    if p == 1:
        return x
    B, Cpp, T, h, w = x.shape
    x = x.view(B, Cpp // (p * p), p, p, T, h, w).permute(0, 1, 4, 5, 2, 6, 3)  # (B, C, T, h, p, w, p)
    return x.reshape(B, Cpp // (p * p), T, h * p, w * p)


# --------------------------------------------------------------------------------------
# Encoder and decoder
# --------------------------------------------------------------------------------------


class Encoder(nn.Module):
    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        w = cfg.widths
        kt = cfg.temporal_kernel
        self.patch = cfg.patch_size
        self.conv_in = CausalConv3d(cfg.in_channels * cfg.patch_size**2, w[0], (kt, 3, 3))
        self.levels = nn.ModuleList()
        for i, time in enumerate(cfg.temporal_down):
            blocks: list[nn.Module] = [ResBlock(w[i], w[i], kt=kt) for _ in range(cfg.blocks_per_level)]
            blocks.append(Downsample(w[i], w[i + 1], time=time, kt=kt))
            self.levels.append(nn.Sequential(*blocks))
        self.mid = nn.Sequential(*[ResBlock(w[-1], w[-1], kt=kt) for _ in range(cfg.blocks_per_level)])
        self.norm_out = ChannelRMSNorm(w[-1])
        self.conv_out = CausalConv3d(w[-1], 2 * cfg.latent_channels, (kt, 3, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(_unshuffle(x, self.patch))  # (B, w0, T, H/p, W/p)
        for level in self.levels:
            h = level(h)  # (B, w_i+1, T', H/2^i+1, W/2^i+1)
        h = self.mid(h)  # (B, w_n, t, h, w)
        return self.conv_out(F.silu(self.norm_out(h)))  # (B, 2C, t, h, w): mean ‖ logvar


class Decoder(nn.Module):
    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        w = cfg.widths
        kt = cfg.temporal_kernel
        self.conv_in = CausalConv3d(cfg.latent_channels, w[-1], (kt, 3, 3))
        self.mid = nn.Sequential(*[ResBlock(w[-1], w[-1], kt=kt) for _ in range(cfg.blocks_per_level)])
        self.levels = nn.ModuleList()
        for i in reversed(range(len(cfg.temporal_down))):
            blocks: list[nn.Module] = [ResBlock(w[i + 1], w[i + 1], kt=kt) for _ in range(cfg.blocks_per_level)]
            blocks.append(Upsample(w[i + 1], w[i], time=cfg.temporal_down[i], kt=kt))
            self.levels.append(nn.Sequential(*blocks))
        self.norm_out = ChannelRMSNorm(w[0])
        self.patch = cfg.patch_size
        self.conv_out = CausalConv3d(w[0], cfg.in_channels * cfg.patch_size**2, (kt, 3, 3))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.conv_in(z))  # (B, w_n, t, h, w)
        for level in self.levels:
            h = level(h)  # (B, w_i, T', 2h, 2w)
        return _shuffle(self.conv_out(F.silu(self.norm_out(h))), self.patch)  # (B, 3, T, H, W)


# --------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------


class CausalVAE(nn.Module):
    """Causal 3D VAE with chunked (exact) and tiled (blended) encode/decode.

    ``encode`` returns latents normalised as ``(mean − latent_shift) / latent_scale``; the
    per-channel shift and scale are buffers saved with the weights, set after training with
    ``set_latent_stats`` so the DiT sees roughly unit-variance latents.
    """

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.register_buffer("latent_shift", torch.zeros(config.latent_channels))
        self.register_buffer("latent_scale", torch.ones(config.latent_channels))
        self.initialize_weights()

    def initialize_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="linear")
                nn.init.zeros_(m.bias)
        # Residual branches start near zero so each block starts as the identity; the
        # posterior log-variance starts small so early training is not drowned in noise.
        for m in self.modules():
            if isinstance(m, ResBlock):
                m.conv2.weight.data.mul_(0.1)
        C = self.config.latent_channels
        self.encoder.conv_out.weight.data[C:].mul_(0.1)
        nn.init.constant_(self.encoder.conv_out.bias.data[C:], -4.0)

    # ---- shapes --------------------------------------------------------------------------

    def latent_shape(self, frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        """(C, t, h, w) of the latents of a video with this many frames and this size."""
        self._check_pixels(frames, height, width)
        cfg = self.config
        return (
            cfg.latent_channels,
            1 + (frames - 1) // cfg.temporal_compression,
            height // cfg.spatial_compression,
            width // cfg.spatial_compression,
        )

    def _check_pixels(self, frames: int, height: int, width: int) -> None:
        tc, sc = self.config.temporal_compression, self.config.spatial_compression
        if frames < 1 or (frames - 1) % tc:
            raise InvalidParameter("frames", frames, f"1 + {tc}k (1, {1 + tc}, {1 + 2 * tc}, …)")
        for name, size in (("height", height), ("width", width)):
            if size < sc or size % sc:
                raise InvalidParameter(name, size, f"a positive multiple of {sc}")

    def _check_input(self, x: torch.Tensor, channels: int, what: str) -> None:
        if x.ndim != 5 or x.shape[1] != channels:
            raise InvalidParameter(f"{what}.shape", tuple(x.shape), f"(B, {channels}, T, H, W)")

    # ---- raw passes (no normalisation) ---------------------------------------------------

    @contextlib.contextmanager
    def _streaming(self) -> Iterator[None]:
        """Turn on the causal carry of every conv for one pass over consecutive chunks."""
        stateful = [m for m in self.modules() if isinstance(m, (CausalConv3d, Upsample))]
        for m in stateful:
            m.streaming = True
        try:
            yield
        finally:
            for m in stateful:
                m.streaming = False
                if isinstance(m, CausalConv3d):
                    m.carry = None
                else:
                    m.seen = False

    def _encode_moments(self, x: torch.Tensor, chunk: int | None) -> torch.Tensor:
        """(B, 3, T, H, W) → (B, 2C, t, h, w), over time chunks of ``chunk`` frames."""
        # Frame 0 plus ``chunk`` frames first, then ``chunk`` frames at a time: every strided
        # conv then sees a multiple of its stride, so the carry stays aligned.
        T = x.shape[2]
        return self._stream(self.encoder, x, chunk, 1 + (T - 1) // self.config.temporal_compression)

    def _decode_raw(self, z: torch.Tensor, chunk: int | None) -> torch.Tensor:
        """(B, C, t, h, w) → (B, 3, T, H, W), over time chunks of ``chunk`` latent frames."""
        t = z.shape[2]
        return self._stream(self.decoder, z, chunk, 1 + (t - 1) * self.config.temporal_compression)

    def _stream(
        self, net: nn.Module, x: torch.Tensor, chunk: int | None, out_frames: int
    ) -> torch.Tensor:
        """Run ``net`` over time chunks [0, 1 + chunk), then ``chunk`` at a time, carrying the
        causal cache; results go straight into one preallocated output (no concatenation)."""
        T = x.shape[2]
        if chunk is None or T <= 1 + chunk:
            return net(x)
        bounds = [0, *range(1 + chunk, T, chunk), T]
        out: torch.Tensor | None = None
        at = 0
        with self._streaming():
            for a, b in zip(bounds, bounds[1:]):
                part = net(x[:, :, a:b])  # (B, C', T', H', W')
                if out is None:
                    out = part.new_empty(*part.shape[:2], out_frames, *part.shape[3:])
                out[:, :, at : at + part.shape[2]] = part
                at += part.shape[2]
        assert out is not None and at == out_frames
        return out

    # ---- public API ----------------------------------------------------------------------

    def encode(
        self,
        x: torch.Tensor,
        *,
        sample: bool = False,
        generator: torch.Generator | None = None,
        chunk_frames: int | None = 16,
        tile: int | None = 256,
        tile_overlap: int = 64,
    ) -> torch.Tensor:
        """Pixels (B, 3, T, H, W) in −1..1 → normalised latents (B, C, t, h, w).

        The posterior mean, or a sample from it when ``sample``. ``chunk_frames`` (a multiple
        of the temporal compression) bounds the frames in memory at once; frames larger than
        ``tile`` pixels are encoded in ``tile``-sized tiles blended over ``tile_overlap``.
        """
        self._check_input(x, self.config.in_channels, "x")
        self._check_pixels(x.shape[2], x.shape[3], x.shape[4])
        tc, sc = self.config.temporal_compression, self.config.spatial_compression
        if chunk_frames is not None and (chunk_frames < tc or chunk_frames % tc):
            raise InvalidParameter("chunk_frames", chunk_frames, f"None or a positive multiple of {tc}")
        moments = _tiled(
            lambda part: self._encode_moments(part, chunk_frames), x, tile=tile, overlap=tile_overlap, step=sc, scale=1 / sc
        )  # (B, 2C, t, h, w)
        mean, logvar = moments.chunk(2, dim=1)  # (B, C, t, h, w) each
        if sample:
            std = torch.exp(0.5 * logvar.clamp(-30.0, 20.0))
            mean = mean + std * torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return (mean - self.latent_shift.view(1, -1, 1, 1, 1)) / self.latent_scale.view(1, -1, 1, 1, 1)

    def decode(
        self, z: torch.Tensor, *, chunk_frames: int | None = 4, tile: int | None = 32, tile_overlap: int = 8
    ) -> torch.Tensor:
        """Normalised latents (B, C, t, h, w) → pixels (B, 3, 1 + 4(t − 1), 8h, 8w), about −1..1.

        ``chunk_frames`` is in latent frames; ``tile`` and ``tile_overlap`` in latent pixels.
        """
        self._check_input(z, self.config.latent_channels, "z")
        if chunk_frames is not None and chunk_frames < 1:
            raise InvalidParameter("chunk_frames", chunk_frames, "None or ≥ 1")
        z = z * self.latent_scale.view(1, -1, 1, 1, 1) + self.latent_shift.view(1, -1, 1, 1, 1)
        sc = self.config.spatial_compression
        return _tiled(lambda part: self._decode_raw(part, chunk_frames), z, tile=tile, overlap=tile_overlap, step=1, scale=sc)

    @torch.no_grad()
    def set_latent_stats(self, shift: torch.Tensor, scale: torch.Tensor) -> None:
        """Store the per-channel mean and std of raw posterior means (computed after training)."""
        C = self.config.latent_channels
        if shift.shape != (C,) or scale.shape != (C,) or not bool((scale > 0).all()):
            raise InvalidParameter("latent stats", (tuple(shift.shape), tuple(scale.shape)), f"two ({C},) tensors, scale > 0")
        self.latent_shift.copy_(shift)
        self.latent_scale.copy_(scale)

    # ---- training ------------------------------------------------------------------------

    def loss(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """Reconstruction (L1 + MSE) + small KL on a batch of pixels (B, 3, T, H, W) in −1..1."""
        self._check_input(x, self.config.in_channels, "x")
        self._check_pixels(x.shape[2], x.shape[3], x.shape[4])
        mean, logvar = self.encoder(x).chunk(2, dim=1)  # (B, C, t, h, w) each
        logvar = logvar.clamp(-30.0, 20.0)
        z = mean + torch.exp(0.5 * logvar) * torch.randn(mean.shape, generator=generator, dtype=mean.dtype)
        recon, parts = self._reconstruction(self.decoder(z), x)
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).mean()
        return recon + self.config.kl_weight * kl, {**parts, "kl": kl.item()}

    def decoder_loss(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Reconstruction loss of the decoder alone on the (frozen) encoder's normalised means —
        the latents a DiT generates — for sharpening a decoder after its encoder is fixed."""
        with torch.no_grad():
            z = self.encode(x, chunk_frames=None, tile=None)  # (B, C, t, h, w)
        recon, parts = self._reconstruction(self.decode(z, chunk_frames=None, tile=None), x)
        return recon, {**parts, "kl": 0.0}

    def _reconstruction(self, recon: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """L1 + l2_weight · MSE of ``recon`` against ``x``, with the parts and PSNR as floats."""
        l1 = (recon - x).abs().mean()
        mse = (recon - x).pow(2).mean()
        psnr = 10.0 * math.log10(4.0 / max(mse.item(), 1e-12))  # peak-to-peak range is 2
        return l1 + self.config.l2_weight * mse, {"l1": l1.item(), "mse": mse.item(), "psnr": psnr}

    # ---- save / load ---------------------------------------------------------------------

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write ``config.json`` and ``model.safetensors`` (weights + latent shift/scale)."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        config = {"_class": "CausalVAE", **asdict(self.config)}
        with atomic_write(folder / "config.json") as tmp:
            tmp.write_text(json.dumps(config, indent=2) + "\n")
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        with atomic_write(folder / "model.safetensors") as tmp:
            save_file(state, str(tmp), metadata={"format": "pt"})
        return folder

    @classmethod
    def from_pretrained(cls, folder: str | Path, *, map_location: str = "cpu") -> CausalVAE:
        from safetensors.torch import load_file

        folder = Path(folder)
        config_path, weights_path = folder / "config.json", folder / "model.safetensors"
        for path in (config_path, weights_path):
            if not path.is_file():
                raise ModelError(f"{path}: missing (a CausalVAE folder holds config.json and model.safetensors)")
        raw = json.loads(config_path.read_text())
        if raw.pop("_class", "CausalVAE") != "CausalVAE":
            raise ModelError(f"{config_path}: not a CausalVAE config")
        known = {f.name for f in fields(VAEConfig)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ModelError(f"{config_path}: unknown config keys {unknown}")
        config = VAEConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})
        model = cls(config)
        try:
            model.load_state_dict(load_file(str(weights_path), device=map_location))
        except RuntimeError as exc:
            raise ModelError(f"{weights_path}: does not match its config: {exc}") from exc
        return model.eval()


# --------------------------------------------------------------------------------------
# Spatial tiling
# --------------------------------------------------------------------------------------


def _tile_starts(size: int, tile: int, overlap: int, step: int) -> list[int]:
    """Start offsets of tiles covering ``size``; tiles are aligned to ``step``."""
    if size <= tile:
        return [0]
    stride = max(step, (tile - overlap) // step * step)
    starts = list(range(0, size - tile, stride))
    starts.append(size - tile)
    return starts


def _ramp(n: int, fade_start: int, fade_end: int) -> torch.Tensor:
    """Weights 1 in the middle, rising linearly over ``fade_start`` and falling over ``fade_end``."""
    w = torch.ones(n)
    i = torch.arange(n, dtype=torch.float32) + 0.5
    if fade_start > 0:
        w = torch.minimum(w, i / fade_start)
    if fade_end > 0:
        w = torch.minimum(w, (n - i) / fade_end)
    return w


def _tiled(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    *,
    tile: int | None,
    overlap: int,
    step: int,
    scale: float,
) -> torch.Tensor:
    """Apply ``fn`` to overlapping spatial tiles of x (B, C, T, H, W) and blend the results.

    ``scale`` is output pixels per input pixel (1/8 for encode, 8 for decode); inside each
    overlap the two tiles are mixed with linear weights, so seams fade instead of showing.
    """
    H, W = x.shape[-2:]
    if tile is None or (H <= tile and W <= tile):
        return fn(x)
    if tile % step or overlap >= tile:
        raise InvalidParameter("tile", (tile, overlap), f"a multiple of {step} larger than the overlap")
    out: torch.Tensor | None = None
    weight: torch.Tensor | None = None
    ys, xs = _tile_starts(H, tile, overlap, step), _tile_starts(W, tile, overlap, step)
    for y in ys:
        for x0 in xs:
            part = fn(x[..., y : y + tile, x0 : x0 + tile])  # (B, C', T', th·s, tw·s)
            if out is None:
                B, C, T = part.shape[:3]
                out = part.new_zeros(B, C, T, round(H * scale), round(W * scale))
                weight = part.new_zeros(1, 1, 1, round(H * scale), round(W * scale))
            oy, ox, th, tw = round(y * scale), round(x0 * scale), part.shape[-2], part.shape[-1]
            # Fade only on sides that overlap a neighbour; the fade spans the overlap.
            fade = round(overlap * scale)
            wy = _ramp(th, fade if y > 0 else 0, fade if y + tile < H else 0)
            wx = _ramp(tw, fade if x0 > 0 else 0, fade if x0 + tile < W else 0)
            w = (wy[:, None] * wx[None, :]).to(part)
            out[..., oy : oy + th, ox : ox + tw] += part * w
            weight[..., oy : oy + th, ox : ox + tw] += w  # type: ignore[index]
    assert out is not None and weight is not None
    return out / weight


# --------------------------------------------------------------------------------------
# Named sizes
# --------------------------------------------------------------------------------------

PRESETS: dict[str, VAEConfig] = {
    # Unit tests: ~140k parameters, runs on 16×16 in milliseconds.
    "tiny": VAEConfig(latent_channels=4, widths=(8, 8, 16, 16), blocks_per_level=1),
    # The procedural world on CPU: per frame (the DiT's patches do the temporal grouping),
    # 4× in space through a 2×2 pixel-unshuffle stem and one level. Trained on 64×64 stills
    # (docs/vae.md has the comparison that chose it and the command).
    "world": VAEConfig(
        latent_channels=8, spatial_compression=4, patch_size=2, widths=(64, 128),
        temporal_compression=1, temporal_kernel=1,
    ),
    # Real footage on a GPU: the usual 16-channel 4×8×8 video latent (~118M parameters).
    "base": VAEConfig(latent_channels=16, widths=(96, 192, 384, 384), blocks_per_level=2, kl_weight=1e-6),
}
