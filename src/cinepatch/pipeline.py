"""The generation pipeline: text encoder + DiT + VAE + rectified-flow sampler.

::

    pipe = Pipeline.from_pretrained("runs/world/pipeline")
    [video] = pipe.generate(["a red circle moves right"], frames=17, width=64, height=64,
                            fps=8, seed=0, steps=30, guidance=4.0, negative=None)
    # video: (17, 64, 64, 3) uint8

Everything an edit needs is one primitive, :class:`Conditioning`: a per-latent-frame mask
plus reference latents. Image-to-video is a first-frame reference; extension a leading chunk;
a loop the first frame given at both ends (the embedded backend builds them from pixels). ``noise_strength < 1`` starts the sampler part-way, from the
source latents noised to that level — the remix primitive.

A pipeline folder (``save_pretrained`` / ``from_pretrained``)::

    config.json          {"format": "cinepatch-pipeline", "version": 1, "dit": {…}, "vae": {…},
                          "text_encoder": {"kind": "minilm"}, "sampler": {…},
                          "serving": {…}, "training": {…}}
    dit.safetensors      DiT weights
    vae.safetensors      VAE weights with its latent shift/scale

The text encoder is a reference (it ships in its own package), not a copy of its weights.
``serving`` (:class:`ServingConfig`) states what the model makes for a request that leaves
things open — the facts a backend serves from; ``training`` is a record of the run and
nothing reads settings from it. Loading needs nothing from the training code.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cinepatch import limits
from cinepatch.errors import InvalidParameter, ModelError
from cinepatch.models.dit import pad_time
from cinepatch.planning.raster import rasterize
from cinepatch.planning.schema import ScenePlan

__all__ = [
    "Pipeline", "Conditioning", "SamplerConfig", "ServingConfig", "FORMAT", "latent_index", "read_dit",
    "LatentLayout", "latent_layout", "layout_inputs", "left_cells",
]

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
    # A layout-grounded DiT, on frames where an object of the plan is off the canvas: extra
    # guidance, away from boxes, from the words read without the plan toward them with it, so
    # the words alone do not draw the object back where the plan has taken it away (0: none).
    plan_guidance: float = 2.0

    def __post_init__(self) -> None:
        if not isinstance(self.plan_guidance, (int, float)) or not 0 <= self.plan_guidance <= 10:
            raise InvalidParameter("sampler.plan_guidance", self.plan_guidance, "0 (none) to 10")


@dataclass(frozen=True)
class ServingConfig:
    """What a model folder serves (its config.json ``serving`` section).

    ``name`` marks its outputs, credentials and ledger entries; ``default_size`` (width,
    height) and ``default_fps`` are made when a request leaves them open; ``max_frames`` is
    the most frames one pass makes (longer videos are made in overlapping windows; ``None``:
    no limit); ``latent_step`` is the VAE's pixel frames per latent frame, so edits pin
    frames in whole latent frames.
    """

    name: str
    default_size: tuple[int, int]
    default_fps: int
    max_frames: int | None
    latent_step: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "default_size", tuple(self.default_size))
        if not isinstance(self.name, str) or not self.name:
            raise InvalidParameter("serving.name", self.name, "a non-empty string")
        size = self.default_size
        if len(size) != 2 or not all(isinstance(v, int) and v > 0 for v in size):
            raise InvalidParameter("serving.default_size", list(size), "[width, height], positive whole numbers")
        if not isinstance(self.default_fps, int) or not 1 <= self.default_fps <= 120:
            raise InvalidParameter("serving.default_fps", self.default_fps, "a whole number from 1 to 120")
        if self.max_frames is not None and (not isinstance(self.max_frames, int) or self.max_frames < 1):
            raise InvalidParameter("serving.max_frames", self.max_frames, "a positive whole number, or null")
        if not isinstance(self.latent_step, int) or self.latent_step < 1:
            raise InvalidParameter("serving.latent_step", self.latent_step, "a positive whole number")

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "default_size": list(self.default_size)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ServingConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown or not known <= set(values):
            raise InvalidParameter("serving", sorted(values), f"exactly the keys {sorted(known)}")
        return cls(**values)

    @classmethod
    def derive(cls, training: dict[str, Any], *, name: str, latent_step: int) -> ServingConfig:
        """For a folder without a ``serving`` section (written before it existed, or by a
        training run): the facts its ``training`` record states — once kept there by ``model
        export`` — else its longest training bucket, its largest square video bucket and its
        training fps (65 frames, 128x128 at 16 fps when nothing says). The one place that
        reads settings out of a training record."""
        config = training.get("config", {})
        texts = config.get("buckets") or ()
        buckets = [tuple(int(v) for v in b.split("x")) for b in texts if isinstance(b, str) and b.count("x") == 2]
        max_frames = training.get("max_frames")
        if not isinstance(max_frames, int):
            max_frames = max((frames for _, _, frames in buckets), default=65)
        size = training.get("default_size")
        if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) for v in size)):
            side = max((w for w, h, frames in buckets if w == h and frames > 1), default=128)
            size = [side, side]
        fps = training.get("default_fps", config.get("fps", 16))
        return cls(
            name=str(training.get("name") or name), default_size=(size[0], size[1]),
            default_fps=int(fps) if isinstance(fps, (int, float)) else 16, max_frames=max_frames,
            latent_step=latent_step,
        )


@dataclass(frozen=True)
class Conditioning:
    """Which latent frames are given, and their reference latents: ``mask (t,)`` in {0, 1}
    and ``latents (C, t, h, w)``, normalised VAE latents. ``release (t,)`` in 0..1 (optional)
    releases frames that are not given gradually: such a frame follows its reference noised
    to the sampler's level until that falls to its release (1: free; :func:`cinepatch.flow.sample`).
    Reference entries of frames neither given nor released are ignored."""

    mask: torch.Tensor
    latents: torch.Tensor
    release: torch.Tensor | None = None


def latent_index(frame: int, step: int) -> int:
    """The latent frame that holds pixel frame ``frame`` (causal VAE, ``step``× in time: the
    first frame alone, then groups of ``step``)."""
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
        serving: ServingConfig | None = None,
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
        self.serving = serving  # None: derived from the training record when saved

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
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``cond`` → ``mask (t,)``, ``latents (C, t, h, w)`` and ``release (t,)`` (or None)
        for a video of this shape."""
        shape = self.latent_shape(frames, height, width)
        mask = torch.zeros(shape[1], device=self.device)
        latents = torch.zeros(shape, device=self.device)
        if cond is None:
            return mask, latents, None
        if tuple(cond.mask.shape) != (shape[1],):
            raise InvalidParameter("cond.mask shape", tuple(cond.mask.shape), f"({shape[1]},) latent frames")
        if tuple(cond.latents.shape) != shape:
            raise InvalidParameter("cond.latents shape", tuple(cond.latents.shape), f"{shape}")
        if not bool(((cond.mask == 0) | (cond.mask == 1)).all()):
            raise InvalidParameter("cond.mask", "values", "0 or 1 per latent frame")
        mask = cond.mask.to(self.device, torch.float32).clone()
        if cond.release is None:
            return mask, cond.latents.to(self.device, torch.float32) * mask[None, :, None, None], None
        release = cond.release.to(self.device, torch.float32).clone()
        if tuple(release.shape) != (shape[1],) or bool(((release < 0) | (release > 1)).any()):
            raise InvalidParameter("cond.release", tuple(release.shape), f"({shape[1]},) values from 0 to 1")
        kept = torch.maximum(mask, (release < 1).float())
        return mask, cond.latents.to(self.device, torch.float32) * kept[None, :, None, None], release

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
        plans: Sequence[ScenePlan | None] | None = None,
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
        ``plans`` (one per video, ``None`` for text only) give a layout-grounded DiT each
        object's box on every frame; a plan of another frame count is resampled in time.
        Guidance pushes from the empty prompt without a plan toward the prompt with it; on
        frames where a plan has an object off the canvas, plan guidance (``sampler.plan_guidance``)
        also pushes, away from every box, from the prompt without its plan toward it with it.
        """
        # -- validate at the edge ----------------------------------------------------------------
        self.check_shape(frames=frames, width=width, height=height)
        prompts, seeds, negatives = _requests(prompts, seed, negative)
        plans = self._check_plans(plans, len(prompts), frames=frames)
        steps = self.sampler.steps if steps is None else steps
        guidance = self.sampler.guidance if guidance is None else guidance
        _check_settings(
            fps=fps, steps=steps, guidance=guidance, noise_strength=noise_strength, init=init, batch_size=batch_size
        )

        shape = self.latent_shape(frames, height, width)
        cond_mask, cond_latents, release = self.resolve_conditioning(cond, frames=frames, width=width, height=height)
        if release is not None and noise_strength != 1:
            raise InvalidParameter("cond.release", "with noise_strength", "noise_strength 1 (release or remix, not both)")
        source = self._init_latents(init, shape, frames=frames, width=width, height=height)
        # Sample whole temporal patches, as the DiT trained: the last latent frame held, with
        # noise of its own, and cropped before decoding.
        pt = self.dit.config.patch[0]
        cond_mask, cond_latents = pad_time(cond_mask, pt, dim=0), pad_time(cond_latents, pt, dim=1)
        release = None if release is None else pad_time(release, pt, dim=0)
        source = None if source is None else pad_time(source, pt, dim=1)
        padded = (shape[0], cond_mask.shape[0], *shape[2:])
        held = (shape[0], padded[1] - shape[1], *shape[2:])
        # Remix: the sampler runs only the last noise_strength share of the clock (see _sample).
        strength = float(noise_strength)
        run_steps = max(1, round(steps * strength))

        # -- sample, a batch at a time -------------------------------------------------------------
        batches = [range(i, min(i + batch_size, len(prompts))) for i in range(0, len(prompts), batch_size)]
        total = run_steps * len(batches)
        meter = _Meter(progress, total, callback, strength, frames=shape[1])
        videos: list[np.ndarray] = []
        try:
            for batch in batches:
                b = len(batch)
                noise = torch.stack([_noise(shape, held, seeds[i]) for i in batch]).to(self.device)  # (b, C, t', h, w)
                x = noise if source is None else (1 - strength) * source[None] + strength * noise
                text = self.encode_text([prompts[i] for i in batch])
                neg = self.encode_text([negatives[i] for i in batch])
                away = scale = None
                if self.dit.config.layout_dim:
                    unplanned = self.encode_plans([None] * b, padded[1:])
                    text.update(self.encode_plans([plans[i] for i in batch], padded[1:]))
                    neg.update(unplanned)
                    left = left_cells(text["layout_occupancy"])
                    if self.sampler.plan_guidance and left.any():  # the words alone would draw it there
                        away, scale = {**text, **unplanned}, self.sampler.plan_guidance * left

                z = self._sample(
                    x, text, neg if guidance != 1 else None, steps=run_steps, guidance=float(guidance),
                    cond_mask=cond_mask[None].expand(b, -1), cond_latents=cond_latents[None].expand(b, *padded),
                    strength=strength, callback=meter.step,
                    release=None if release is None else release[None].expand(b, -1), away=away, away_scale=scale,
                )[:, :, : shape[1]]
                videos.extend(self.decode_latents(z))
        finally:
            meter.close()
        return videos

    def _check_plans(self, plans: Sequence[ScenePlan | None] | None, n: int, *, frames: int) -> list[ScenePlan | None]:
        """One plan (or None) per video, on ``frames`` frames; refused for a text-only DiT."""
        plans = [None] if plans is None else list(plans)
        if len(plans) == 1:
            plans = plans * n
        if len(plans) != n or not all(p is None or isinstance(p, ScenePlan) for p in plans):
            raise InvalidParameter("plans", f"{len(plans)} items", f"None, or one ScenePlan (or None) per video ({n})")
        if any(p is not None for p in plans) and not self.dit.config.layout_dim:
            raise InvalidParameter("plans", "scene plans", "None: this model is not layout-grounded")
        return [p if p is None or p.canvas.frames == frames else p.resampled(frames=frames) for p in plans]

    def encode_plans(self, plans: Sequence[ScenePlan | None], latent: tuple[int, int, int]) -> dict[str, torch.Tensor]:
        """The DiT's box-map inputs for one batch (``None``: no plan)."""
        layouts = [None if p is None or not p.objects else latent_layout(p, latent, frame_step=self.frame_step) for p in plans]
        return layout_inputs(layouts, self.text_encoder, latent=latent, device=self.device)

    def _sample(
        self,
        x: torch.Tensor,
        text: dict[str, torch.Tensor],
        negative: dict[str, torch.Tensor] | None,
        *,
        steps: int,
        guidance: float,
        cond_mask: torch.Tensor,
        cond_latents: torch.Tensor,
        strength: float,
        callback: StepCallback,
        release: torch.Tensor | None = None,
        away: dict[str, torch.Tensor] | None = None,
        away_scale: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Run the sampler from ``x``. Remix (``strength < 1``) runs it on a rescaled clock
        ``u ∈ [1, 0]`` with real time ``t = s·u``, so ``dx/du = s·v(x, s·u)``: the loop in
        :func:`cinepatch.flow.sample` stays the one loop."""
        from cinepatch import flow

        def model_fn(x: torch.Tensor, u: torch.Tensor, **kwargs: torch.Tensor) -> torch.Tensor:
            return strength * self.dit(x, strength * u, **kwargs)

        return flow.sample(
            model_fn if strength < 1 else self.dit, x, steps=steps, method=self.sampler.method, guidance=guidance,
            text=text, negative=negative, cond_mask=cond_mask, cond_latents=cond_latents, shift=self.sampler.shift,
            callback=callback, release=release, away=away, away_scale=away_scale,
        )

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
        self,
        folder: str | Path,
        *,
        training: dict[str, Any] | None = None,
        serving: ServingConfig | None = None,
        dit_dtype: torch.dtype | None = None,
    ) -> Path:
        """Write the pipeline folder atomically (a temporary folder renamed into place).

        ``serving`` (else the pipeline's own, else derived from ``training``) is written as
        the folder's ``serving`` section. ``dit_dtype=torch.bfloat16`` stores the DiT's
        floating-point weights at half the size (how the default model ships); loading casts
        them back to the model's float32.
        """
        from safetensors.torch import save_file

        from cinepatch.io.atomic import atomic_dir

        folder = Path(folder)
        training = training if training is not None else self.metadata.get("training", {})
        serving = serving or self.serving or ServingConfig.derive(
            training, name=f"cinepatch-{folder.name}", latent_step=self.frame_step
        )
        if serving.latent_step != self.frame_step:
            raise InvalidParameter("serving.latent_step", serving.latent_step, f"{self.frame_step} (the VAE's)")
        config = {
            "format": FORMAT,
            "version": VERSION,
            "dit": self.dit.config.to_dict(),
            "vae": dataclasses.asdict(self.vae.config),
            "text_encoder": self.text_spec,
            "sampler": dataclasses.asdict(self.sampler),
            "serving": serving.to_dict(),
            "training": training,
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
        from cinepatch.models.text import load_text_encoder
        from cinepatch.models.vae import CausalVAE, VAEConfig

        folder = Path(folder)
        config = _read_config(folder)
        try:
            vae = CausalVAE(VAEConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in config["vae"].items()}))
            sampler = SamplerConfig(**config["sampler"])
        except (TypeError, ValueError) as exc:
            raise ModelError(f"{folder / 'config.json'}: {exc}") from exc
        serving = _serving(folder, config, latent_step=vae.config.temporal_compression)
        dit = _load_dit(folder, config)
        _load_weights(vae, folder / "vae.safetensors")
        text_encoder = load_text_encoder(config["text_encoder"])
        return cls(
            dit=dit, vae=vae, text_encoder=text_encoder, text_spec=config["text_encoder"], sampler=sampler,
            metadata={"training": config.get("training", {})}, serving=serving, device=device,
        )


def read_dit(folder: str | Path) -> Any:  # -> cinepatch.models.dit.DiT
    """The DiT of a model folder, in float32 and eval mode: the one reader of DiT weights
    (:meth:`Pipeline.from_pretrained`, the trainer's ``init_from`` and ``cinepatch model
    recut`` all load through it). :class:`ModelError` names what is wrong with the folder."""
    folder = Path(folder)
    return _load_dit(folder, _read_config(folder))


def _read_config(folder: Path) -> dict[str, Any]:
    """A model folder's ``config.json``, checked: format, version, sections, weight files."""
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
    return config


def _serving(folder: Path, config: dict[str, Any], *, latent_step: int) -> ServingConfig:
    """The folder's ``serving`` section, checked against its VAE; derived when it has none."""
    where = folder / "config.json"
    training = config.get("training", {})
    if "serving" in config and not isinstance(config["serving"], dict):
        raise ModelError(f"{where}: the 'serving' section is not a mapping")
    try:
        if "serving" not in config:
            return ServingConfig.derive(
                training if isinstance(training, dict) else {}, name=f"cinepatch-{folder.name}", latent_step=latent_step
            )
        serving = ServingConfig.from_dict(config["serving"])
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{where}: {exc}") from exc
    if serving.latent_step != latent_step:
        raise ModelError(f"{where}: serving.latent_step is {serving.latent_step}, its VAE's {latent_step}")
    return serving


def _load_dit(folder: Path, config: dict[str, Any]) -> Any:
    from cinepatch.models.dit import DiT, DiTConfig

    try:
        dit = DiT(DiTConfig.from_dict(config["dit"]))
    except (TypeError, ValueError) as exc:  # InvalidParameter is a ValueError
        raise ModelError(f"{folder / 'config.json'}: {exc}") from exc
    _load_weights(dit, folder / "dit.safetensors")
    return dit.eval()


def _load_weights(module: torch.nn.Module, path: Path) -> None:
    """Load ``path`` into ``module`` strictly; weights stored in bfloat16 are cast to the module's float32."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        module.load_state_dict(load_file(str(path)), strict=True)
    except (RuntimeError, OSError, SafetensorError) as exc:
        raise ModelError(f"{path}: does not match config.json or is damaged ({exc})") from exc


class _Meter:
    """Reports sampler steps: a tqdm bar (``progress`` None: when stderr is a terminal; True:
    always), or ``progress(done, total)``, and ``callback(step, t, latents)`` on the real clock
    with the video's own ``frames`` latent frames (the held padding cropped)."""

    def __init__(
        self, progress: bool | Progress | None, total: int, callback: StepCallback | None, strength: float, frames: int
    ) -> None:
        self.progress, self.total, self.callback, self.strength = progress, total, callback, strength
        self.frames = frames
        self.done = 0
        self.bar = None
        if progress is None or progress is True:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc="generate", unit="step", disable=None if progress is None else False)

    def step(self, i: int, u_next: float, z: torch.Tensor) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
        if callable(self.progress) and self.progress is not True:
            self.progress(self.done, self.total)
        if self.callback is not None:
            self.callback(i, self.strength * u_next, z[:, :, : self.frames])

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@dataclass(frozen=True)
class LatentLayout:
    """A plan on a latent grid: ``occupancy (N, t, h, w)``, ``uv (N, 2, t, h, w)`` and the
    entries' phrases, objects then occluders (see :func:`cinepatch.planning.raster.rasterize`)."""

    occupancy: torch.Tensor
    uv: torch.Tensor
    phrases: tuple[str, ...]


def latent_layout(plan: ScenePlan, latent: tuple[int, int, int], *, frame_step: int) -> LatentLayout:
    """``plan`` rasterised on a latent grid ``(t, h, w)``: latent frame ``j`` reads the boxes of
    pixel frame ``j · frame_step`` (the frame a causal VAE's latent frame ends on)."""
    t, h, w = latent
    maps = rasterize(plan, grid=(h, w))
    frames = np.minimum(np.arange(t) * frame_step, plan.canvas.frames - 1)
    return LatentLayout(
        torch.from_numpy(np.ascontiguousarray(maps.occupancy[:, frames])),
        torch.from_numpy(np.ascontiguousarray(maps.uv[:, :, frames])),
        maps.phrases,
    )


def left_cells(occupancy: torch.Tensor) -> torch.Tensor:
    """Box maps ``(B, N, t, h, w)`` → ``(B, 1, t, h, w)`` in {0, 1}: on each latent frame where an
    object of the plan is wholly off the canvas (or hidden), the cells at least one cell away
    from every box of that frame — where the sampler's plan guidance applies."""
    present = occupancy.flatten(3).amax(3) > 0  # (B, N, t)
    gone = (present.any(2, keepdim=True) & ~present).any(1)  # (B, t): a planned entry absent
    near = F.max_pool3d(occupancy.sum(1, keepdim=True), (1, 3, 3), stride=1, padding=(0, 1, 1)) > 0
    return (gone[:, None, :, None, None] & ~near).to(occupancy.dtype)


def layout_inputs(
    layouts: Sequence[LatentLayout | None], text_encoder: Any, *, latent: tuple[int, int, int], device: Any
) -> dict[str, torch.Tensor]:
    """A batch's keyword inputs of a layout-grounded DiT: each clip's box maps, or none (all-zero
    occupancy), padded to the batch's largest object count (at least one). Phrases are encoded
    one at a time so an embedding never depends on its batch-mates."""
    n = max([1] + [len(lay.phrases) for lay in layouts if lay is not None])
    b, (t, h, w) = len(layouts), latent
    occupancy, uv = torch.zeros(b, n, t, h, w), torch.zeros(b, n, 2, t, h, w)
    phrases = torch.zeros(b, n, text_encoder.dim)
    for i, lay in enumerate(layouts):
        if lay is None or not lay.phrases:
            continue
        k = len(lay.phrases)
        occupancy[i, :k], uv[i, :k] = lay.occupancy, lay.uv
        phrases[i, :k] = torch.cat([text_encoder.encode([p]).pooled.float() for p in lay.phrases])
    return {"layout_occupancy": occupancy.to(device), "layout_uv": uv.to(device), "layout_phrases": phrases.to(device)}


def _requests(
    prompts: Sequence[str] | str, seed: int | Sequence[int], negative: str | Sequence[str] | None
) -> tuple[list[str], list[int], list[str]]:
    """One prompt, seed and negative prompt per video, or :class:`InvalidParameter`."""
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    if not prompts or not all(isinstance(p, str) for p in prompts):
        raise InvalidParameter("prompts", prompts, "a non-empty list of strings")
    seeds = _seeds(seed, len(prompts))
    if len(prompts) == 1 and len(seeds) > 1:
        prompts = prompts * len(seeds)
    if negative is None or isinstance(negative, str):
        negatives = [negative or ""] * len(prompts)
    else:
        negatives = list(negative)
    if len(negatives) != len(prompts) or not all(isinstance(n, str) for n in negatives):
        raise InvalidParameter("negative", negative, f"None, one string, or {len(prompts)} strings")
    return prompts, seeds, negatives


def _check_settings(
    *, fps: Any, steps: Any, guidance: Any, noise_strength: Any, init: Any, batch_size: Any
) -> None:
    if not isinstance(fps, (int, float)) or not 1 <= fps <= 120:
        raise InvalidParameter("fps", fps, "1 to 120")
    limits.STEPS.check(steps)
    limits.GUIDANCE.check(guidance)
    if not isinstance(noise_strength, (int, float)) or not 0 < noise_strength <= 1:
        raise InvalidParameter("noise_strength", noise_strength, "0 < strength ≤ 1")
    if noise_strength < 1 and init is None:
        raise InvalidParameter("init", None, "source frames or latents when noise_strength < 1")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidParameter("batch_size", batch_size, "a positive int")


def _as_frames(name: str, frames: Any) -> np.ndarray:
    arr = np.asarray(frames)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise InvalidParameter(name, f"{arr.dtype}{tuple(arr.shape)}", "uint8 frames (T, H, W, 3) or an image (H, W, 3)")
    return np.ascontiguousarray(arr)


def _noise(shape: tuple[int, ...], held: tuple[int, ...], seed: int) -> torch.Tensor:
    """A video's initial noise: the frames' own (the same draw whatever the padding), then the
    held frames' from the same generator."""
    gen = torch.Generator().manual_seed(seed)
    return torch.cat([torch.randn(shape, generator=gen), torch.randn(held, generator=gen)], dim=1)


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
