"""The generation pipeline: text encoder + DiT + VAE + rectified-flow sampler.

::

    pipe = Pipeline.from_pretrained("runs/world/pipeline")
    [video] = pipe.generate(["a red circle moves right"], frames=17, width=64, height=64,
                            fps=8, seed=0, steps=30, guidance=4.0, negative=None)
    # video: (17, 64, 64, 3) uint8

Everything an edit needs is one primitive, :class:`Conditioning`: a per-latent-frame mask
plus reference latents (given directly, or as pixel frames at frame indices that the pipeline
encodes). Image-to-video is a first-frame reference; extension a leading chunk; a loop the
first frame given at both ends. ``noise_strength < 1`` starts the sampler part-way, from the
source latents noised to that level — the remix primitive.

A pipeline folder (``save_pretrained`` / ``from_pretrained``)::

    config.json          {"format": "cinepatch-pipeline", "version": 1, "dit": {…}, "vae": {…},
                          "text_encoder": {"kind": "minilm"}, "sampler": {…}, "training": {…}}
    dit.safetensors      DiT weights
    vae.safetensors      VAE weights with its latent shift/scale

The text encoder is a reference (it ships in its own package), not a copy of its weights.
Loading needs nothing from the training code.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cinepatch.errors import InvalidParameter, ModelError
from cinepatch.planning.maps import BoxLayout, latent_maps

__all__ = ["Pipeline", "Conditioning", "SamplerConfig", "FORMAT", "latent_index"]

FORMAT = "cinepatch-pipeline"
VERSION = 1
COMPONENTS = ("dit", "vae")  # one <name>.safetensors each

Progress = Callable[[int, int], None]
StepCallback = Callable[[int, float, torch.Tensor], None]


@dataclass(frozen=True)
class SamplerConfig:
    """Defaults of :meth:`Pipeline.generate` stored with a model."""

    steps: int = 30
    guidance: float = 4.0
    shift: float = 1.0
    method: str = "euler"


@dataclass(frozen=True)
class Conditioning:
    """Which latent frames are given, and their reference latents.

    - ``mask (t,)`` in {0, 1} and ``latents (C, t, h, w)`` set frames directly (latents are
      normalised VAE latents; entries where the mask is 0 are ignored);
    - ``frames``: ``(index, pixels)`` pairs, ``pixels`` one image ``(H, W, 3)`` or a clip
      ``(1 + 4k, H, W, 3)`` uint8 at the video's size, starting at pixel frame ``index``
      (negative counts from the end). The pipeline encodes each and sets the latent frames it
      covers: pixel frame ``i`` lives in latent frame ``ceil(i / 4)``.

    Both may be given; ``frames`` are laid over ``mask``/``latents``.
    """

    mask: torch.Tensor | None = None
    latents: torch.Tensor | None = None
    frames: tuple[tuple[int, np.ndarray], ...] = field(default=())

    @classmethod
    def first_frame(cls, image: np.ndarray) -> Conditioning:
        """Image-to-video: the first frame is given."""
        return cls(frames=((0, image),))

    @classmethod
    def first_last(cls, first: np.ndarray, last: np.ndarray) -> Conditioning:
        """The first and the last frames are given (a loop when they are the same image)."""
        return cls(frames=((0, first), (-1, last)))


def latent_index(frame: int, step: int = 4) -> int:
    """The latent frame that holds pixel frame ``frame`` (causal VAE, ``step``× in time)."""
    return 0 if frame <= 0 else (frame + step - 1) // step


class Pipeline:
    """Text-to-video and conditioned generation from one DiT, one VAE and one text encoder."""

    def __init__(
        self,
        *,
        dit: torch.nn.Module,
        vae: torch.nn.Module,
        text_encoder: Any,
        text_spec: dict[str, Any] | None = None,
        sampler: SamplerConfig = SamplerConfig(),
        metadata: dict[str, Any] | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        if dit.config.in_channels != vae.config.latent_channels:
            raise ModelError(
                f"DiT reads {dit.config.in_channels} latent channels, the VAE makes {vae.config.latent_channels}"
            )
        if dit.config.text_dim != text_encoder.dim:
            raise ModelError(f"DiT expects text_dim {dit.config.text_dim}, the text encoder gives {text_encoder.dim}")
        self.device = torch.device(device)
        self.dit = dit.to(self.device).eval()
        self.vae = vae.to(self.device).eval()
        self.text_encoder = text_encoder
        self.text_spec = dict(text_spec) if text_spec is not None else text_encoder.spec()
        self.sampler = sampler
        self.metadata = dict(metadata or {})

    # -- shapes ----------------------------------------------------------------------------------

    @property
    def size_multiple(self) -> int:
        """Width and height must be multiples of this: VAE compression × DiT patch."""
        _, ph, pw = self.dit.config.patch
        return self.vae.config.spatial_compression * math.lcm(ph, pw)

    @property
    def frame_step(self) -> int:
        return self.vae.config.temporal_compression

    def latent_shape(self, frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        cfg = self.vae.config
        return (
            cfg.latent_channels,
            1 + (frames - 1) // cfg.temporal_compression,
            height // cfg.spatial_compression,
            width // cfg.spatial_compression,
        )

    def check_shape(self, *, frames: int, width: int, height: int) -> None:
        """Raise :class:`InvalidParameter` unless the model can make this shape."""
        k = self.frame_step
        if not isinstance(frames, int) or frames < 1 or (frames - 1) % k:
            raise InvalidParameter("frames", frames, f"1 + {k}k: 1, {1 + k}, {1 + 2 * k}, {1 + 3 * k}, …")
        m = self.size_multiple
        for name, size in (("width", width), ("height", height)):
            if not isinstance(size, int) or size < m or size % m:
                raise InvalidParameter(name, size, f"a positive multiple of {m} (VAE × patch)")

    # -- encode / decode -------------------------------------------------------------------------

    def encode_text(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        for prompt in dict.fromkeys(prompts):  # alone first, so an embedding (cached by the
            self.text_encoder.encode([prompt])  # encoder) does not depend on its batch-mates
        emb = self.text_encoder.encode(prompts)
        return {
            "text_states": emb.states.to(self.device),
            "text_mask": emb.mask.to(self.device),
            "text_pooled": emb.pooled.to(self.device),
        }

    @torch.no_grad()
    def encode_layouts(self, layouts: Sequence[BoxLayout | None], latent: tuple[int, int, int]) -> dict[str, torch.Tensor]:
        """The DiT's box-map inputs for one batch (``None``: no layout)."""
        maps = []
        for lay in layouts:
            if lay is None or not lay.phrases:
                maps.append(None)
                continue
            occupancy, uv = latent_maps(lay, latent=latent, frame_step=self.frame_step)
            maps.append((torch.from_numpy(occupancy), torch.from_numpy(uv), lay.phrases))
        return {k: v.to(self.device) for k, v in layout_batch(maps, self.text_encoder, latent=latent).items()}

    def encode_frames(self, frames: np.ndarray) -> torch.Tensor:
        """``(T, H, W, 3)`` uint8 with ``T = 1 + 4k`` → normalised latents ``(C, t, h, w)``."""
        frames = _as_frames("frames", frames)
        self.check_shape(frames=len(frames), width=frames.shape[2], height=frames.shape[1])
        x = torch.from_numpy(frames).to(self.device).permute(3, 0, 1, 2)[None].float() / 127.5 - 1.0
        return self.vae.encode(x)[0]  # (C, t, h, w)

    @torch.no_grad()
    def decode_latents(self, z: torch.Tensor) -> list[np.ndarray]:
        """``(B, C, t, h, w)`` latents → ``B`` videos ``(T, H, W, 3)`` uint8."""
        x = self.vae.decode(z.to(self.device))  # (B, 3, T, H, W)
        x = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        return [v.permute(1, 2, 3, 0).cpu().numpy() for v in x]

    def resolve_conditioning(
        self, cond: Conditioning | None, *, frames: int, width: int, height: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``cond`` → ``mask (t,)`` and ``latents (C, t, h, w)`` for a video of this shape."""
        shape = self.latent_shape(frames, height, width)
        mask = torch.zeros(shape[1], device=self.device)
        latents = torch.zeros(shape, device=self.device)
        if cond is None:
            return mask, latents
        if cond.mask is not None or cond.latents is not None:
            if cond.mask is None or cond.latents is None:
                raise InvalidParameter("cond", "mask without latents", "both mask and latents, or neither")
            if tuple(cond.mask.shape) != (shape[1],):
                raise InvalidParameter("cond.mask shape", tuple(cond.mask.shape), f"({shape[1]},) latent frames")
            if tuple(cond.latents.shape) != shape:
                raise InvalidParameter("cond.latents shape", tuple(cond.latents.shape), f"{shape}")
            if not bool(((cond.mask == 0) | (cond.mask == 1)).all()):
                raise InvalidParameter("cond.mask", "values", "0 or 1 per latent frame")
            mask = cond.mask.to(self.device, torch.float32).clone()
            latents = cond.latents.to(self.device, torch.float32) * mask[None, :, None, None]
        for index, pixels in cond.frames:
            clip = _as_frames("cond.frames", pixels)
            n = len(clip)
            start = frames + index if index < 0 else index
            if clip.shape[1:3] != (height, width):
                raise InvalidParameter(
                    "cond.frames size", f"{clip.shape[2]}x{clip.shape[1]}", f"{width}x{height} (the video's size)"
                )
            if (n - 1) % self.frame_step:
                raise InvalidParameter("cond.frames length", n, f"1 + {self.frame_step}k frames")
            first = latent_index(start, self.frame_step)
            last = first + (n - 1) // self.frame_step
            if not 0 <= start < frames or last >= shape[1]:
                raise InvalidParameter("cond.frames index", index, f"a clip that fits in frames 0..{frames - 1}")
            z = self.encode_frames(clip)  # (C, 1 + (n−1)/4, h, w)
            latents[:, first : last + 1] = z
            mask[first : last + 1] = 1.0
        return mask, latents

    # -- generation ----------------------------------------------------------------------------

    @torch.no_grad()
    def generate(
        self,
        prompts: Sequence[str] | str,
        *,
        frames: int,
        width: int,
        height: int,
        fps: float = 8,
        seed: int | Sequence[int] = 0,
        steps: int | None = None,
        guidance: float | None = None,
        negative: str | Sequence[str] | None = None,
        cond: Conditioning | None = None,
        layouts: Sequence[BoxLayout | None] | None = None,
        init: np.ndarray | torch.Tensor | None = None,
        noise_strength: float = 1.0,
        batch_size: int = 4,
        progress: bool | Progress | None = None,
        callback: StepCallback | None = None,
    ) -> list[np.ndarray]:
        """Videos ``(frames, height, width, 3)`` uint8, one per (prompt, seed) pair.

        ``seed`` is one int (prompt ``i`` uses ``seed + i``) or one seed per prompt; one prompt
        with several seeds makes one video per seed. ``negative`` replaces the empty prompt of
        classifier-free guidance (one string, or one per prompt). ``init`` — frames or
        latents ``(C, t, h, w)`` of a source video — with ``noise_strength`` in (0, 1) starts
        the sampler at ``t = noise_strength`` from the source noised to that level (remix);
        the given frames of ``cond`` are kept exactly. ``progress``: ``None`` a tqdm bar when
        stderr is a terminal, ``True`` always, ``False`` never, or a function
        ``(done, total)``. ``callback(step, t, latents)`` runs after every sampler step.
        ``layouts`` (one per video, ``None`` for text-only) gives a layout-grounded DiT each
        object's phrase and box on every frame (a scene plan); guidance pushes from the empty
        prompt without boxes toward the prompt with them.
        """
        from cinepatch import flow

        # -- validate at the edge ----------------------------------------------------------------
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        if not prompts or not all(isinstance(p, str) for p in prompts):
            raise InvalidParameter("prompts", prompts, "a non-empty list of strings")
        seeds = _seeds(seed, len(prompts))
        if len(prompts) == 1 and len(seeds) > 1:
            prompts = prompts * len(seeds)
        self.check_shape(frames=frames, width=width, height=height)
        if not isinstance(fps, (int, float)) or not 1 <= fps <= 120:
            raise InvalidParameter("fps", fps, "1 to 120")
        steps = self.sampler.steps if steps is None else steps
        guidance = self.sampler.guidance if guidance is None else guidance
        if not isinstance(steps, int) or not 1 <= steps <= 1000:
            raise InvalidParameter("steps", steps, "an int from 1 to 1000")
        if not isinstance(guidance, (int, float)) or not 0 <= guidance <= 30:
            raise InvalidParameter("guidance", guidance, "0 to 30 (1 = no guidance)")
        if not isinstance(noise_strength, (int, float)) or not 0 < noise_strength <= 1:
            raise InvalidParameter("noise_strength", noise_strength, "0 < strength ≤ 1")
        if noise_strength < 1 and init is None:
            raise InvalidParameter("init", None, "source frames or latents when noise_strength < 1")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidParameter("batch_size", batch_size, "a positive int")
        if negative is None or isinstance(negative, str):
            negatives = [negative or ""] * len(prompts)
        else:
            negatives = list(negative)
        if len(negatives) != len(prompts) or not all(isinstance(n, str) for n in negatives):
            raise InvalidParameter("negative", negative, f"None, one string, or {len(prompts)} strings")

        if layouts is not None:
            layouts = list(layouts)
            if len(prompts) == 1 and len(layouts) == 1 and len(seeds) > 1:
                layouts = layouts * len(seeds)
            if len(layouts) != len(prompts):
                raise InvalidParameter("layouts", f"{len(layouts)} layouts", f"one per video ({len(prompts)}) or None")
            if any(lay is not None for lay in layouts) and not self.dit.config.layout_dim:
                raise InvalidParameter("layouts", "box layouts", "None: this model is not layout-grounded")
        shape = self.latent_shape(frames, height, width)
        cond_mask, cond_latents = self.resolve_conditioning(cond, frames=frames, width=width, height=height)
        source = self._init_latents(init, shape, frames=frames, width=width, height=height)
        # Remix: the sampler runs on a rescaled clock u ∈ [1, 0] with real time t = s·u,
        # so dx/du = s·v(x, s·u); the loop in flow.sample stays the one loop.
        strength = float(noise_strength)
        run_steps = max(1, round(steps * strength))

        # -- sample, a batch at a time -------------------------------------------------------------
        batches = [range(i, min(i + batch_size, len(prompts))) for i in range(0, len(prompts), batch_size)]
        total, done = run_steps * len(batches), 0
        bar = None
        if progress is None or progress is True:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, desc="generate", unit="step", disable=None if progress is None else False)
        videos: list[np.ndarray] = []
        try:
            for batch in batches:
                b = len(batch)
                noise = torch.stack(
                    [torch.randn(shape, generator=torch.Generator().manual_seed(seeds[i])) for i in batch]
                ).to(self.device)  # (b, C, t, h, w)
                x = noise if source is None else (1 - strength) * source[None] + strength * noise
                text = self.encode_text([prompts[i] for i in batch])
                neg = self.encode_text([negatives[i] for i in batch])
                if self.dit.config.layout_dim:
                    text.update(self.encode_layouts([layouts[i] if layouts else None for i in batch], shape[1:]))
                    neg.update(self.encode_layouts([None] * b, shape[1:]))

                def model_fn(x: torch.Tensor, u: torch.Tensor, **kwargs: torch.Tensor) -> torch.Tensor:
                    return strength * self.dit(x, strength * u, **kwargs)

                def on_step(i: int, u_next: float, z: torch.Tensor) -> None:
                    nonlocal done
                    done += 1
                    if bar is not None:
                        bar.update(1)
                    if callable(progress) and progress is not True:
                        progress(done, total)
                    if callback is not None:
                        callback(i, strength * u_next, z)

                z = flow.sample(
                    model_fn if strength < 1 else self.dit,
                    x,
                    steps=run_steps,
                    method=self.sampler.method,
                    guidance=float(guidance),
                    text=text,
                    negative=neg if guidance != 1 else None,
                    cond_mask=cond_mask[None].expand(b, -1),
                    cond_latents=cond_latents[None].expand(b, *shape),
                    shift=self.sampler.shift,
                    callback=on_step,
                    self_condition=self.dit.config.self_cond,
                )
                videos.extend(self.decode_latents(z))
        finally:
            if bar is not None:
                bar.close()
        return videos

    def _init_latents(
        self, init: np.ndarray | torch.Tensor | None, shape: tuple[int, ...], *, frames: int, width: int, height: int
    ) -> torch.Tensor | None:
        if init is None:
            return None
        if isinstance(init, torch.Tensor):
            if tuple(init.shape) != shape:
                raise InvalidParameter("init shape", tuple(init.shape), f"latents {shape}")
            return init.to(self.device, torch.float32)
        clip = _as_frames("init", init)
        if clip.shape[:3] != (frames, height, width):
            raise InvalidParameter("init shape", tuple(clip.shape), f"frames ({frames}, {height}, {width}, 3)")
        return self.encode_frames(clip)

    # -- folders -------------------------------------------------------------------------------

    def save_pretrained(
        self, folder: str | Path, *, training: dict[str, Any] | None = None, dit_dtype: torch.dtype | None = None
    ) -> Path:
        """Write the pipeline folder atomically (a temporary folder renamed into place).

        ``dit_dtype=torch.bfloat16`` stores the DiT's floating-point weights at half the size
        (how the default model ships); loading casts them back to the model's float32.
        """
        from safetensors.torch import save_file

        from cinepatch.io.atomic import atomic_dir

        folder = Path(folder)
        config = {
            "format": FORMAT,
            "version": VERSION,
            "dit": self.dit.config.to_dict(),
            "vae": dataclasses.asdict(self.vae.config),
            "text_encoder": self.text_spec,
            "sampler": dataclasses.asdict(self.sampler),
            "training": training if training is not None else self.metadata.get("training", {}),
        }
        with atomic_dir(folder) as tmp:
            for name, module in (("dit", self.dit), ("vae", self.vae)):
                state = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
                if name == "dit" and dit_dtype is not None:
                    state = {k: v.to(dit_dtype) if v.is_floating_point() else v for k, v in state.items()}
                save_file(state, str(tmp / f"{name}.safetensors"), metadata={"format": "pt", "component": name})
            (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        return folder

    @classmethod
    def from_pretrained(cls, folder: str | Path, *, device: str | torch.device = "cpu") -> Pipeline:
        """Load a folder written by :meth:`save_pretrained`; :class:`ModelError` if it is not one."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        from cinepatch.models.dit import DiT, DiTConfig
        from cinepatch.models.text import load_text_encoder
        from cinepatch.models.vae import CausalVAE, VAEConfig

        folder = Path(folder)
        if not folder.is_dir():
            raise ModelError(f"{folder}: no such model folder")
        needed = ["config.json", *(f"{c}.safetensors" for c in COMPONENTS)]
        missing = [n for n in needed if not (folder / n).is_file()]
        if missing:
            raise ModelError(f"{folder}: incomplete pipeline folder, missing {', '.join(missing)}")
        try:
            config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelError(f"{folder / 'config.json'}: not readable JSON ({exc})") from exc
        if not isinstance(config, dict) or config.get("format") != FORMAT:
            raise ModelError(f"{folder / 'config.json'}: not a {FORMAT} config")
        if config.get("version") != VERSION:
            raise ModelError(f"{folder / 'config.json'}: version {config.get('version')!r}, this cinepatch reads {VERSION}")
        for key in ("dit", "vae", "text_encoder", "sampler"):
            if not isinstance(config.get(key), dict):
                raise ModelError(f"{folder / 'config.json'}: missing the {key!r} section")
        try:
            dit = DiT(DiTConfig.from_dict(config["dit"]))
            vae = CausalVAE(VAEConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in config["vae"].items()}))
            sampler = SamplerConfig(**config["sampler"])
        except (TypeError, ValueError) as exc:
            raise ModelError(f"{folder / 'config.json'}: {exc}") from exc
        for name, module in (("dit", dit), ("vae", vae)):
            path = folder / f"{name}.safetensors"
            try:
                module.load_state_dict(load_file(str(path)), strict=True)
            except (RuntimeError, OSError, SafetensorError) as exc:
                raise ModelError(f"{path}: does not match config.json or is damaged ({exc})") from exc
        text_encoder = load_text_encoder(config["text_encoder"])
        return cls(
            dit=dit, vae=vae, text_encoder=text_encoder, text_spec=config["text_encoder"], sampler=sampler,
            metadata={"training": config.get("training", {})}, device=device,
        )


def layout_batch(maps: Sequence[Any], text_encoder: Any, *, latent: tuple[int, int, int]) -> dict[str, torch.Tensor]:
    """The DiT's layout inputs for a batch: each clip's ``(occupancy, uv, phrases)`` or ``None``
    (no layout: all-zero occupancy), padded to the batch's largest object count (at least 1).

    Phrases are encoded one at a time so an embedding never depends on its batch-mates."""
    n = max([1] + [len(m[2]) for m in maps if m is not None])
    b, (t, h, w) = len(maps), latent
    occupancy = torch.zeros(b, n, t, h, w)
    uv = torch.zeros(b, n, 2, t, h, w)
    phrases = torch.zeros(b, n, text_encoder.dim)
    for i, m in enumerate(maps):
        if m is None or not m[2]:
            continue
        k = len(m[2])
        occupancy[i, :k], uv[i, :k] = m[0], m[1]
        phrases[i, :k] = torch.cat([text_encoder.encode([p]).pooled for p in m[2]]).float()
    return {"layout_occupancy": occupancy, "layout_uv": uv, "layout_phrases": phrases}


def _as_frames(name: str, frames: Any) -> np.ndarray:
    arr = np.asarray(frames)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise InvalidParameter(name, f"{arr.dtype}{tuple(arr.shape)}", "uint8 frames (T, H, W, 3) or an image (H, W, 3)")
    return np.ascontiguousarray(arr)


def _seeds(seed: int | Sequence[int], n: int) -> list[int]:
    """One seed per video: ``seed + i`` for prompt ``i``, or the list given."""
    values = [seed] if isinstance(seed, (int, np.integer)) else list(seed) if isinstance(seed, (list, tuple)) else []
    ok = all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and 0 <= s < 2**63 for s in values)
    if not values or not ok:
        raise InvalidParameter("seed", seed, "an int from 0 to 2**63 − 1, or a list of them")
    if len(values) == 1:
        return [int(values[0]) + i for i in range(n)]
    if n != 1 and len(values) != n:
        raise InvalidParameter("seed", seed, f"one seed, or one per prompt ({n})")
    return [int(v) for v in values]
