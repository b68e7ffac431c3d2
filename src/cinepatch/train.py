"""Train cinepatch's DiT with rectified flow — one script, one process or many.

Launch (the ``cinepatch train`` command and ``python -m cinepatch.train`` take the same flags)::

    # one process on CPU, from the repository root: the last stage of the default model's
    # recipe (the defaults of TrainConfig) on the procedural world; docs/default_model.md has
    # the stills stage it starts from (init_from)
    cinepatch train --data world --out runs/world --steps 1600

    # two processes on one CPU machine (DDP over gloo)
    torchrun --standalone --nproc_per_node 2 -m cinepatch.train --data world --out runs/world

    # eight GPUs (DDP over NCCL); FSDP and bf16 autocast for a large model
    torchrun --standalone --nproc_per_node 8 -m cinepatch.train --data /data/clips \\
        --out runs/base --set model=base parallel=fsdp dtype=bfloat16 vae_path=runs/vae

    # any field of TrainConfig: --set key=value (unknown keys are an error); DiT and VAE
    # fields with a prefix: --set dit.depth=2 vae.latent_channels=4

Distributed or not is read from ``RANK``/``WORLD_SIZE`` (set by torchrun). Every rank draws
the *same* global batch plan from ``(seed, step)`` and takes its slice, so N processes compute
the gradient of exactly the batch one process would, and the data stream's position is the step
number. A run resumes from ``OUT/checkpoint`` (model, EMA, optimizer, step, RNG states); the
checkpoint is written atomically, so ``kill -9`` loses at most the steps since the last one.
``OUT/pipeline`` is always a loadable :class:`cinepatch.pipeline.Pipeline` (EMA weights).

Read ``main`` first: it is the loop. Each step is ``make_batch`` (this rank's slice of the
global batch and every random draw) then ``train_step`` (``cinepatch.flow.flow_loss`` — the
tested loss — backward, clip, AdamW, EMA); ``setup_ranks``, ``build_models`` and ``resume``
come before it, checkpoints, samples and the log line after.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import random
import sys
import time
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from cinepatch import flow
from cinepatch.data import BatchStream, FolderSource, WorldSource, parse_buckets
from cinepatch.errors import InvalidParameter
from cinepatch.io.atomic import atomic_dir
from cinepatch.models.dit import PRESETS as DIT_PRESETS
from cinepatch.models.dit import DiT, DiTConfig, forward_flops, pad_time
from cinepatch.models.text import load_text_encoder
from cinepatch.models.vae import PRESETS as VAE_PRESETS
from cinepatch.models.vae import CausalVAE, VAEConfig
from cinepatch.pipeline import LatentLayout, Pipeline, SamplerConfig, latent_layout, layout_inputs, read_dit

__all__ = [
    "TrainConfig", "apply_overrides", "lr_at", "EMA", "draw_cond_mask", "COND_KINDS", "cell_weights",
    "Ranks", "Models", "Latents", "Batch", "setup_ranks", "build_models", "resume", "make_batch",
    "train_step", "main",
]


# ---------------------------------------------------------------------------------------------
# Config: the defaults are the recipe of the shipped default model's last stage (short clips)
# ---------------------------------------------------------------------------------------------


# How a training clip can be conditioned: which latent frames are given clean (see draw_cond_mask).
COND_KINDS = ("first", "last", "first_last", "middle", "leading", "trailing", "both_ends")


@dataclass(frozen=True)
class TrainConfig:
    # run
    out_dir: str = "runs/world"
    seed: int = 0
    resume: bool = True  # continue from out_dir/checkpoint when it exists
    max_steps: int = 1600
    # data: "world" (rendered on the fly) or a folder with captions.jsonl / captions.csv
    data: str = "world"
    buckets: tuple[str, ...] = ("128x128x17", "128x128x1")
    image_fraction: float = 0.5  # share of batches that are still images (world data)
    holdout: bool = True  # world data: leave out cinepatch.data.world.HOLDOUT combinations
    fps: int = 8
    caption_dropout: float = 0.1  # empty caption → the model learns the unconditional velocity
    # A layout-grounded DiT (dit.layout_dim > 0) reads each clip's scene plan as box maps; this
    # share of clips (and every clip whose caption is dropped) trains without them, so text-only
    # generation keeps learning and guidance can push toward the plan.
    layout_dropout: float = 0.2
    cond_prob: float = 0.3  # share of clips with a conditioning mask (first, last, chunk, …)
    latent_cache: int = 1000  # >0: train on this many distinct clips per bucket, encoded once
    # model
    model: str = "world"  # a preset of cinepatch.models.dit.PRESETS
    dit: dict[str, Any] = field(default_factory=dict)  # preset overrides (dit.KEY=VALUE)
    init_from: str = ""  # a model folder whose DiT (same shape) starts a fresh run (fine-tuning)
    vae_path: str = "checkpoints/vae-world-128"  # a trained CausalVAE folder (frozen); "": vae_preset
    vae_preset: str = "tiny"  # used only without vae_path: a random frozen VAE (tests, smoke)
    vae: dict[str, Any] = field(default_factory=dict)  # overrides of that preset (vae.KEY=VALUE)
    text_encoder: dict[str, Any] = field(default_factory=lambda: {"kind": "minilm"})
    # rectified flow: a shift puts most clips at high noise, where a clip's layout is decided;
    # the unshifted share keeps enough low-noise times to finish shapes and edges
    timestep_shift: float = 3.0  # >1 spends more steps at high noise (SD3's shift)
    timestep_unshifted: float = 0.4  # share of clips whose time skips the shift (low-noise detail)
    # world data: the loss on latent cells an object covers counts 1 + object_weight times, so
    # objects of a few pixels are not drowned by the background they sit on (0: plain MSE)
    object_weight: float = 4.0
    # optimisation
    batch_size: int = 8  # global: split evenly across ranks
    lr: float = 1e-4
    min_lr: float = 2e-5
    warmup_steps: int = 50
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0
    ema_decay: float = 0.995
    # system
    parallel: str = "ddp"  # "ddp" or "fsdp" (shards parameters, gradients, optimizer state)
    dtype: str = "float32"  # "bfloat16": autocast (slower than fp32 on CPUs without AMX)
    compile: bool = False
    threads: int = 0  # torch threads per rank; 0: cores / local ranks
    # logging, checkpoints, samples
    log_every: int = 10
    ckpt_every: int = 200
    sample_every: int = 0  # 0: only at the end
    sample_prompts: tuple[str, ...] = ("a red circle moves right on a black background",)
    sample_steps: int = 20
    sample_guidance: float = 4.0
    peak_flops: float = 0.0  # per rank, for MFU; 0: estimated (CPU: cores × 64 FLOP × 2.5 GHz)

    def __post_init__(self) -> None:
        if self.parallel not in ("ddp", "fsdp"):
            raise InvalidParameter("parallel", self.parallel, "'ddp' or 'fsdp'")
        if self.dtype not in ("float32", "bfloat16"):
            raise InvalidParameter("dtype", self.dtype, "'float32' or 'bfloat16'")
        for name in ("max_steps", "batch_size", "log_every", "ckpt_every"):
            if getattr(self, name) < 1:
                raise InvalidParameter(name, getattr(self, name), "a positive int")
        for name in ("caption_dropout", "layout_dropout", "cond_prob", "image_fraction", "timestep_unshifted"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise InvalidParameter(name, getattr(self, name), "0 to 1")
        if not 0.0 <= self.ema_decay < 1.0:
            raise InvalidParameter("ema_decay", self.ema_decay, "0 ≤ decay < 1")
        if not 0.0 <= self.object_weight <= 100.0:
            raise InvalidParameter("object_weight", self.object_weight, "0 to 100")


def _parse_value(name: str, text: str, kind: Any) -> Any:
    """Turn ``text`` into a value of the annotated type ``kind``."""
    origin = typing.get_origin(kind)
    try:
        if kind is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if kind in (int, float, str):
            return kind(text)
        if origin is tuple:
            item = typing.get_args(kind)[0]
            return tuple(_parse_value(name, part, item) for part in text.split(",") if part)
        if origin is dict:
            value = json.loads(text)
            if not isinstance(value, dict):
                raise ValueError(text)
            return value
    except ValueError as exc:
        raise InvalidParameter(name, text, f"a value of type {getattr(kind, '__name__', kind)}") from exc
    raise InvalidParameter(name, text, f"a settable field (type {kind} is not)")


def _parse_loose(text: str) -> Any:
    """A value for a DiT/VAE field: JSON when it parses (numbers, booleans, lists), else text."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def apply_overrides(config: TrainConfig, pairs: Sequence[str]) -> TrainConfig:
    """Apply ``key=value`` overrides; unknown keys raise :class:`InvalidParameter`.

    ``dit.KEY=VALUE`` and ``vae.KEY=VALUE`` set one field of the DiT preset or the VAE config
    (checked against those dataclasses when the model is built).
    """
    hints = typing.get_type_hints(TrainConfig)
    changes: dict[str, Any] = {}
    dit, vae = dict(config.dit), dict(config.vae)
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise InvalidParameter("--set", pair, "KEY=VALUE")
        if key.startswith("dit."):
            dit[key[4:]] = _parse_loose(text)
        elif key.startswith("vae."):
            vae[key[4:]] = _parse_loose(text)
        elif key in hints:
            changes[key] = _parse_value(key, text, hints[key])
        else:
            raise InvalidParameter("--set", key, "a field of TrainConfig: " + ", ".join(sorted(hints)))
    return dataclasses.replace(config, **changes, dit=dit, vae=vae)


# ---------------------------------------------------------------------------------------------
# Helpers: LR schedule, EMA, conditioning masks, loss weights
# ---------------------------------------------------------------------------------------------


def lr_at(step: int, config: TrainConfig) -> float:
    """Linear warmup to ``lr``, then cosine decay to ``min_lr`` at ``max_steps``."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.max_steps - config.warmup_steps)
    coeff = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return config.min_lr + coeff * (config.lr - config.min_lr)


class EMA:
    """Exponential moving average of a model's weights, kept in a frozen copy.

    The decay warms up as ``min(decay, (1 + n) / (10 + n))`` so early averages are not
    dominated by the random initialisation.
    """

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = decay
        self.updates = 0

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for ema_p, p in zip(self.model.parameters(), model.parameters()):
            full = p.full_tensor() if hasattr(p, "full_tensor") else p  # FSDP: gather the shard
            ema_p.lerp_(full.detach().to(ema_p.dtype), 1.0 - decay)

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.updates = int(state["updates"])


# One model learns text-to-video, image-to-video, extension and loops: each clip is given a
# random conditioning mask over its latent frames; the loss is taken on the other frames. The
# kinds are the shapes the edits pin (cinepatch.editing): a still at the start, the end or in
# between (image-to-video anywhere), a leading chunk (extend), chunks at both ends with new
# frames between (loop, blend, storyboard bridges).
def draw_cond_mask(frames: int, rng: np.random.Generator, prob: float) -> tuple[str, np.ndarray]:
    """A conditioning kind and its ``(frames,)`` mask over latent frames (never all ones).
    The kind is drawn uniformly from ``COND_KINDS``; clips of two frames draw only from
    those that fit them."""
    mask = np.zeros(frames, dtype=np.float32)
    if frames >= 3:
        fit = COND_KINDS
    else:
        fit = tuple(k for k in COND_KINDS if k in ("first", "last", "leading", "trailing"))
    if frames < 2 or rng.random() >= prob:
        return "none", mask
    kind = fit[int(rng.integers(len(fit)))]
    if kind in ("first", "first_last"):
        mask[0] = 1
    if kind in ("last", "first_last"):
        mask[-1] = 1
    if kind == "middle":
        mask[int(rng.integers(1, frames - 1))] = 1
    if kind in ("leading", "trailing"):
        k = int(rng.integers(1, frames))  # 1 … frames − 1 conditioned
        mask[:k] = 1
        if kind == "trailing":
            mask = mask[::-1].copy()
    if kind == "both_ends":
        lead = int(rng.integers(1, frames - 1))  # at least one free frame in between
        trail = int(rng.integers(1, frames - lead))
        mask[:lead] = 1
        mask[frames - trail :] = 1
    return kind, mask


def cell_weights(focus: torch.Tensor | None, cells: tuple[int, int, int], object_weight: float) -> torch.Tensor:
    """Loss weight per latent cell ``(t, h, w)``: 1, plus ``object_weight`` × the largest object
    coverage among the pixels the cell encodes (``focus (T, H, W)``; none given: all ones)."""
    if object_weight <= 0 or focus is None:
        return torch.ones(cells)
    covered = torch.nn.functional.adaptive_max_pool3d(focus[None].float(), cells)[0]  # (t, h, w)
    return 1.0 + object_weight * covered


# ---------------------------------------------------------------------------------------------
# The run's parts: processes, models, data, one step
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ranks:
    """Where this process sits: torchrun sets RANK / WORLD_SIZE / LOCAL_RANK; alone, rank 0 of 1."""

    rank: int
    world: int
    local_world: int
    device: torch.device
    distributed: bool

    @property
    def master(self) -> bool:
        return self.rank == 0

    def log(self, message: str) -> None:
        if self.master:
            print(message, flush=True)


def setup_ranks(config: TrainConfig) -> Ranks:
    """Join the process group (under torchrun), pick the device and threads, seed every RNG."""
    distributed = int(os.environ.get("RANK", -1)) != -1
    if distributed:
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local_rank, local_world = int(os.environ["LOCAL_RANK"]), int(os.environ.get("LOCAL_WORLD_SIZE", 1))
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend)
        device = torch.device(f"cuda:{local_rank}" if backend == "nccl" else "cpu")
    else:
        rank, world, local_world = 0, 1, 1
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        # Ranks on one machine share its cores; oversubscribing them makes every rank slower.
        torch.set_num_threads(config.threads or max(1, (os.cpu_count() or 1) // local_world))
    if config.batch_size % world:
        raise InvalidParameter("batch_size", config.batch_size, f"a multiple of the world size {world}")
    random.seed(config.seed + rank)
    np.random.seed(config.seed + rank)
    torch.manual_seed(config.seed)  # same initial weights on every rank (DDP also broadcasts)
    return Ranks(rank, world, local_world, device, distributed)


@dataclass
class Models:
    """The frozen text encoder and VAE, the DiT (and its DDP/FSDP/compiled wrapper), EMA, optimizer."""

    text_encoder: Any
    vae: CausalVAE
    dit: DiT
    wrapped: torch.nn.Module  # what the forward pass calls: the DiT itself, or a wrapper of it
    ema: EMA
    optimizer: torch.optim.Optimizer
    fsdp: bool


def _tuples(overrides: dict[str, Any], cls: type) -> dict[str, Any]:
    """JSON lists → tuples for dataclass fields, unknown keys an error."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise InvalidParameter(cls.__name__, unknown, "fields among " + ", ".join(sorted(known)))
    return {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}


def _frozen_vae(config: TrainConfig, ranks: Ranks) -> CausalVAE:
    if config.vae_path:
        vae = CausalVAE.from_pretrained(config.vae_path)
    else:
        if config.vae_preset not in VAE_PRESETS:
            raise InvalidParameter("vae_preset", config.vae_preset, ", ".join(VAE_PRESETS))
        vae = CausalVAE(dataclasses.replace(VAE_PRESETS[config.vae_preset], **_tuples(config.vae, VAEConfig)))
        ranks.log(f"note: no vae_path, using an untrained '{config.vae_preset}' VAE (frozen)")
    return vae.to(ranks.device).eval().requires_grad_(False)


def build_models(config: TrainConfig, ranks: Ranks) -> Models:
    """Text encoder and VAE (frozen), the DiT from its preset and overrides, wrapped for the run."""
    text_encoder = load_text_encoder(config.text_encoder)
    vae = _frozen_vae(config, ranks)
    if config.model not in DIT_PRESETS:
        raise InvalidParameter("model", config.model, ", ".join(DIT_PRESETS))
    dit_config = dataclasses.replace(
        DIT_PRESETS[config.model], **_tuples(config.dit, DiTConfig),
        in_channels=vae.config.latent_channels, text_dim=text_encoder.dim,
    )
    model = DiT(dit_config).to(ranks.device)
    ema = EMA(model, config.ema_decay)
    n_params = sum(p.numel() for p in model.parameters())
    ranks.log(f"DiT {config.model}: {n_params / 1e6:.2f}M parameters, world size {ranks.world}, device {ranks.device}")
    fsdp = ranks.distributed and config.parallel == "fsdp"
    wrapped: torch.nn.Module = model
    if fsdp:
        from torch.distributed.fsdp import fully_shard

        for block in model.blocks:
            fully_shard(block)
        fully_shard(model)
    elif ranks.distributed:
        from torch.nn.parallel import DistributedDataParallel as DDP

        wrapped = DDP(model, device_ids=[ranks.device.index] if ranks.device.type == "cuda" else None)
    if config.compile:
        wrapped = torch.compile(wrapped)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, betas=(config.beta1, config.beta2), weight_decay=config.weight_decay
    )
    return Models(text_encoder, vae, model, wrapped, ema, optimizer, fsdp)


def _init_from(models: Models, config: TrainConfig) -> None:
    """Start the DiT from a model folder's DiT of the same shape (fine-tuning). A different
    shape is refused: ``cinepatch model recut`` re-cuts a folder's patches or output first."""
    saved = read_dit(config.init_from)
    mine, theirs = (dataclasses.replace(c, grad_checkpointing=False) for c in (models.dit.config, saved.config))
    if mine != theirs:
        diff = {k: v for k, v in theirs.to_dict().items() if mine.to_dict()[k] != v}
        raise InvalidParameter(
            "init_from", config.init_from, "a model folder whose DiT has this run's shape",
            hint=f"it differs in {diff}; re-cut it first with `cinepatch model recut`",
        )
    models.dit.load_state_dict(saved.state_dict())
    models.ema = EMA(models.dit, config.ema_decay)


def resume(config: TrainConfig, ranks: Ranks, models: Models) -> int:
    """Load ``out_dir/checkpoint`` when there is one (returns its step), else start fresh —
    from ``init_from`` when given — and clear the metrics of an earlier run (returns 0)."""
    out = Path(config.out_dir)
    path = out / "checkpoint" / "state.pt"
    if not path.exists() and (out / ".checkpoint.old" / "state.pt").exists():
        path = out / ".checkpoint.old" / "state.pt"  # killed between atomic_dir's two renames
    metrics = out / "metrics.jsonl"
    if not (config.resume and path.exists()):
        if config.init_from:
            _init_from(models, config)
            ranks.log(f"initialised the DiT from {config.init_from}")
        if ranks.master and metrics.exists():
            metrics.unlink()  # a fresh run: don't mix curves
        return 0
    state = torch.load(path, map_location="cpu", weights_only=False)
    _load_model_and_optimizer(models.dit, models.optimizer, state, fsdp=models.fsdp)
    models.ema.load_state_dict(state["ema"])
    models.vae.load_state_dict(state["vae"])
    step = int(state["step"])
    if len(state["rng"]) == ranks.world:
        _set_rng_state(state["rng"][ranks.rank])
    ranks.log(f"resumed from {path} at step {step}")
    if ranks.master and metrics.exists():  # drop lines logged after the checkpoint (a killed run)
        lines = metrics.read_text(encoding="utf-8").splitlines()
        kept = [line for line in lines if line.strip() and json.loads(line)["step"] <= step]
        metrics.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
    return step


@dataclass(frozen=True)
class Encoded:
    """One training clip, ready for a step."""

    latent: torch.Tensor  # (C, t, h, w)
    caption: str
    weight: torch.Tensor | None  # (t, h, w) loss weight per latent cell; None without object_weight
    layout: LatentLayout | None  # the clip's scene plan as box maps, for a layout-grounded DiT


class Latents:
    """The clips of a step as VAE latents, captions, per-cell loss weights and (for a
    layout-grounded DiT) box maps, memoised.

    With ``latent_cache`` the run trains on that many distinct clips per bucket, each encoded
    once; without it every step's clips are new and nothing is kept.
    """

    def __init__(self, config: TrainConfig, ranks: Ranks, models: Models) -> None:
        patch = models.dit.config.patch
        multiple = models.vae.config.spatial_compression * math.lcm(patch[1], patch[2])
        self.layout = models.dit.config.layout_dim > 0
        self.buckets = parse_buckets(config.buckets, multiple=multiple)
        if config.data == "world":
            self.source: Any = WorldSource(
                self.buckets, fps=config.fps, seed=config.seed, image_fraction=config.image_fraction,
                holdout=config.holdout, focus=config.object_weight > 0, plans=self.layout,
            )
        elif self.layout:
            raise InvalidParameter("data", config.data, "'world' (the source with scene plans) for a layout-grounded DiT")
        else:
            self.source = FolderSource(config.data, self.buckets, fps=config.fps, seed=config.seed)
        self.stream = BatchStream(
            self.source, batch_size=config.batch_size, seed=config.seed, rank=ranks.rank, world_size=ranks.world
        )
        self.config, self.vae, self.device = config, models.vae, ranks.device
        self.frames_multiple = patch[0]  # clips are held to whole temporal patches (pad_time)
        self.cache: dict[tuple[Any, int], Encoded] = {}
        if config.latent_cache:  # the cached clips' captions come back too: keep their embeddings
            encoder = models.text_encoder
            encoder.cache_size = max(encoder.cache_size, config.latent_cache * len(self.buckets) + 1)

    def get(self, plan: Any) -> list[Encoded]:
        """This rank's clips of ``plan``, encoded."""
        n = self.config.latent_cache
        keys = [(plan.bucket, i % n if n else i) for i in plan.indices]
        store = self.cache if n else {}
        for key in keys:
            if key not in store:
                store[key] = self._encode(self.source.get(*key))
        return [store[k] for k in keys]

    def _encode(self, clip: Any) -> Encoded:
        with torch.no_grad():  # one clip at a time: a latent must not depend on its batch-mates
            latent = self.vae.encode(clip.video[None].to(self.device))[0]  # (C, t, h, w)
        weight = None
        if self.config.object_weight:  # else plain MSE: no per-cell weights stored at all
            weight = cell_weights(clip.focus, tuple(latent.shape[1:]), self.config.object_weight).to(self.device)
            weight = pad_time(weight, self.frames_multiple, dim=0)
        # The last frame held to a whole temporal patch, before any noise: the held copy gets
        # noise of its own and a loss like any frame (a still trains both frames of a patch).
        latent = pad_time(latent, self.frames_multiple, dim=1)
        layout = None
        if self.layout:  # the plan's last frame holds too (latent_layout clamps to it)
            layout = latent_layout(clip.plan, tuple(latent.shape[1:]), frame_step=self.vae.config.temporal_compression)
        return Encoded(latent, clip.caption, weight, layout)


@dataclass(frozen=True)
class Batch:
    """This rank's slice of one step's batch: what :func:`cinepatch.flow.flow_loss` takes."""

    x0: torch.Tensor  # (b, C, t, h, w) clean latents
    t: torch.Tensor  # (b,) noise levels
    noise: torch.Tensor  # (b, C, t, h, w)
    cond_mask: torch.Tensor  # (b, t): 1 where a latent frame is given
    weight: torch.Tensor | None  # (b, t, h, w) loss weight per latent cell, None: all ones
    # Every further keyword input of the DiT, batch first: the prompt's states, mask and
    # pooled vector, and for a layout-grounded DiT the box maps (layout_*).
    inputs: dict[str, torch.Tensor]
    global_size: int  # clips in the step over all ranks (for throughput)


def make_batch(config: TrainConfig, step: int, plan: Any, latents: Latents, text_encoder: Any) -> Batch:
    """Draw one step's captions (and plans) dropped, conditioning masks, times and noise.

    Every random draw covers the *global* batch from ``(seed, step)`` and a rank keeps its
    slice, so N processes train on exactly the batch one process would.
    """
    clips = latents.get(plan)
    x0 = torch.stack([c.latent for c in clips])  # (b, C, t, h, w)
    weight = torch.stack([c.weight for c in clips]) if clips[0].weight is not None else None  # (b, t, h, w)
    b, b_global, device = x0.shape[0], config.batch_size, x0.device
    lo, hi = plan.offset, plan.offset + b
    rng = np.random.default_rng(_step_seed(config.seed, step, 1))
    drop = rng.random(b_global) < config.caption_dropout
    masks = np.stack([draw_cond_mask(x0.shape[2], rng, config.cond_prob)[1] for _ in range(b_global)])
    gen = torch.Generator().manual_seed(_step_seed(config.seed, step, 2))
    t = flow.sample_timesteps(b_global, generator=gen, shift=config.timestep_shift, unshifted=config.timestep_unshifted)
    noise = torch.randn((b_global, *x0.shape[1:]), generator=gen)
    prompts = ["" if d else c.caption for d, c in zip(drop[lo:hi], clips)]
    for prompt in prompts:  # one at a time: an embedding must not depend on its batch-mates,
        text_encoder.encode([prompt])  # or a resumed run would drift (the encoder caches it)
    text = text_encoder.encode(prompts)
    inputs = {
        "text_states": text.states.to(device), "text_mask": text.mask.to(device), "text_pooled": text.pooled.to(device),
    }
    if latents.layout:
        plan_rng = np.random.default_rng(_step_seed(config.seed, step, 3))
        no_plan = drop | (plan_rng.random(b_global) < config.layout_dropout)
        kept = [None if d else c.layout for d, c in zip(no_plan[lo:hi], clips)]
        inputs.update(layout_inputs(kept, text_encoder, latent=tuple(x0.shape[2:]), device=device))
    return Batch(
        x0=x0, t=t[lo:hi].to(device), noise=noise[lo:hi].to(device),
        cond_mask=torch.from_numpy(masks[lo:hi]).to(device), weight=weight, inputs=inputs, global_size=b_global,
    )


def train_step(models: Models, batch: Batch, config: TrainConfig) -> float:
    """One optimizer step on ``batch`` (the loss is :func:`cinepatch.flow.flow_loss`); returns the loss."""
    keep = batch.cond_mask[:, None, :, None, None]  # (b, 1, t, 1, 1)
    with torch.autocast(batch.x0.device.type, dtype=torch.bfloat16, enabled=config.dtype == "bfloat16"):
        loss = flow.flow_loss(
            models.wrapped, batch.x0, text=batch.inputs, cond_mask=batch.cond_mask, cond_latents=batch.x0 * keep,
            weight=batch.weight, t=batch.t, noise=batch.noise,
        )
    models.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if config.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(models.dit.parameters(), config.grad_clip)
    models.optimizer.step()
    models.ema.update(models.dit)
    return loss.item()


# ---------------------------------------------------------------------------------------------
# Checkpoints, samples, logging
# ---------------------------------------------------------------------------------------------


def _pipeline(config: TrainConfig, models: Models) -> Pipeline:
    """The EMA model as a pipeline that samples at the noise levels the run trained on."""
    return Pipeline(
        dit=models.ema.model, vae=models.vae, text_encoder=models.text_encoder, text_spec=dict(config.text_encoder),
        sampler=SamplerConfig(shift=config.timestep_shift), device=next(models.ema.model.parameters()).device,
    )


def save_checkpoint(config: TrainConfig, ranks: Ranks, models: Models, step: int, loss: float) -> None:
    """Write ``out/checkpoint`` (everything a resume needs) and ``out/pipeline``, atomically."""
    out = Path(config.out_dir)
    model_state, optim_state = _full_states(models.dit, models.optimizer, fsdp=models.fsdp)
    rng_states: list[Any] = [None] * ranks.world
    if ranks.distributed:
        dist.all_gather_object(rng_states, _rng_state())
    else:
        rng_states = [_rng_state()]
    if ranks.master:
        state = {
            "step": step, "config": dataclasses.asdict(config), "dit_config": models.dit.config.to_dict(),
            "model": model_state, "optimizer": optim_state, "ema": models.ema.state_dict(),
            "vae": models.vae.state_dict(), "rng": rng_states,
        }
        with atomic_dir(out / "checkpoint") as tmp:
            torch.save(state, tmp / "state.pt")
        meta = {"step": step, "loss": loss, "data": config.data, "config": dataclasses.asdict(config)}
        _pipeline(config, models).save_pretrained(out / "pipeline", training=meta)
    if ranks.distributed:
        dist.barrier()


def write_samples(config: TrainConfig, ranks: Ranks, models: Models, latents: Latents, step: int) -> None:
    """Sample the prompts at the largest bucket's shape into ``out/samples`` (MP4 and a strip)."""
    if not ranks.master:
        return
    from cinepatch.io.video import write_strip, write_video

    shape = max(latents.buckets, key=lambda b: (b.frames, b.width * b.height))
    videos = _pipeline(config, models).generate(
        list(config.sample_prompts), frames=shape.frames, width=shape.width, height=shape.height,
        fps=config.fps, seed=config.seed, steps=config.sample_steps, guidance=config.sample_guidance,
        negative=None, progress=False,
    )
    for i, frames in enumerate(videos):
        base = Path(config.out_dir) / "samples" / f"step{step:07d}_{i}"
        if len(frames) > 1:
            write_video(base.with_suffix(".mp4"), frames, fps=config.fps)
        write_strip(base.with_suffix(".png"), frames)


class Meter:
    """Loss, samples/s and MFU over the steps since the last log line."""

    def __init__(self, config: TrainConfig, ranks: Ranks) -> None:
        self.config, self.ranks = config, ranks
        self.peak = _peak_flops(ranks.device, config, ranks.local_world)
        self.reset()

    def reset(self) -> None:
        self.loss, self.steps, self.samples, self.flops = 0.0, 0, 0, 0.0
        self.start = time.perf_counter()

    def add(self, loss: float, batch: Batch, dit_config: DiTConfig) -> None:
        self.loss += loss
        self.steps += 1
        self.samples += batch.global_size
        text_len = batch.inputs["text_states"].shape[1]
        flops = forward_flops(dit_config, tuple(batch.x0.shape[2:]), text_len=text_len, batch=batch.global_size)
        self.flops += 3 * flops["flops"]  # forward and backward (≈ 2× forward)

    def write(self, step: int, lr: float, bucket: Any) -> float:
        """Log the window's figures (every rank's mean loss) to stdout and metrics.jsonl; return the loss."""
        loss = self.loss / self.steps
        if self.ranks.distributed:
            reduced = torch.tensor([loss], dtype=torch.float64)
            dist.all_reduce(reduced)
            loss = reduced.item() / self.ranks.world
        elapsed = time.perf_counter() - self.start
        record = {
            "step": step, "loss": round(loss, 6), "lr": lr, "samples_per_s": round(self.samples / elapsed, 2),
            "mfu": round(self.flops / elapsed / (self.peak * self.ranks.world), 5), "bucket": str(bucket),
        }
        if self.ranks.master:
            out = Path(self.config.out_dir)
            out.mkdir(parents=True, exist_ok=True)
            with open(out / "metrics.jsonl", "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
        self.ranks.log(
            f"step {step:6d} | loss {loss:.4f} | lr {lr:.2e} | "
            f"{record['samples_per_s']:.1f} samples/s | MFU {100 * record['mfu']:.2f}%"
        )
        self.reset()
        return loss


def _peak_flops(device: torch.device, config: TrainConfig, local_world: int) -> float:
    if config.peak_flops > 0:
        return config.peak_flops
    if device.type == "cuda":
        return 312e12 if config.dtype == "bfloat16" else 19.5e12  # A100 dense bf16 / fp32
    cores = max(1, (os.cpu_count() or 1) // local_world)
    return cores * 64 * 2.5e9  # AVX-512: 2 FMA units × 16 fp32 lanes × 2 FLOP, at ~2.5 GHz


def _rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def _step_seed(seed: int, step: int, stream: int) -> int:
    """A 63-bit seed for one step's draws, independent of the world size."""
    return int(np.random.SeedSequence([seed, step, stream]).generate_state(2, np.uint64)[0] >> np.uint64(1))


def _full_states(model: torch.nn.Module, optimizer: torch.optim.Optimizer, *, fsdp: bool) -> tuple[dict, dict]:
    """Unsharded model and optimizer state (every rank takes part when sharded)."""
    if not fsdp:
        return model.state_dict(), optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

    return get_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def _load_model_and_optimizer(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any], *, fsdp: bool
) -> None:
    if not fsdp:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

    set_state_dict(
        model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"],
        options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=False),
    )


# ---------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------


def main(config: TrainConfig) -> dict[str, Any]:
    """Train; returns a summary (``step``, ``loss``, ``out_dir``) on rank 0 (``{}`` elsewhere)."""
    ranks = setup_ranks(config)
    models = build_models(config, ranks)
    step = resume(config, ranks, models)
    latents = Latents(config, ranks, models)
    meter = Meter(config, ranks)
    loss = float("nan")

    # -- the training loop --------------------------------------------------------------------
    while step < config.max_steps:
        lr = lr_at(step, config)
        for group in models.optimizer.param_groups:
            group["lr"] = lr
        plan = latents.stream.plan(step)
        batch = make_batch(config, step, plan, latents, models.text_encoder)
        meter.add(train_step(models, batch, config), batch, models.dit.config)
        step += 1
        last = step == config.max_steps
        if step % config.log_every == 0 or last:
            loss = meter.write(step, lr, plan.bucket)
        if step % config.ckpt_every == 0 or last:
            save_checkpoint(config, ranks, models, step, loss)
        if config.sample_every and step % config.sample_every == 0 and not last:
            write_samples(config, ranks, models, latents, step)

    # -- finish ---------------------------------------------------------------------------------
    if config.max_steps == step and config.sample_prompts:
        write_samples(config, ranks, models, latents, step)
    summary = {"step": step, "loss": loss, "out_dir": str(Path(config.out_dir))} if ranks.master else {}
    if ranks.distributed:
        dist.barrier()
        dist.destroy_process_group()
    return summary


if __name__ == "__main__":  # python -m cinepatch.train … (also under torchrun)
    from cinepatch.cli import main as cli_main

    sys.exit(cli_main(["train", *sys.argv[1:]]))
