"""Train cinepatch's DiT with rectified flow — one script, one process or many.

Launch (the ``cinepatch train`` command and ``python -m cinepatch.train`` take the same flags)::

    # one process on CPU: a tiny model on the procedural world
    cinepatch train --data world --out runs/world --steps 2000

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

from cinepatch.errors import InvalidParameter

__all__ = ["TrainConfig", "apply_overrides", "lr_at", "EMA", "draw_cond_mask", "COND_KINDS", "cell_weights", "main"]


# ---------------------------------------------------------------------------------------------
# Config: the defaults are the CPU recipe for the procedural world
# ---------------------------------------------------------------------------------------------


# How a training clip can be conditioned: which latent frames are given clean (see draw_cond_mask).
COND_KINDS = ("first", "last", "first_last", "middle", "leading", "trailing", "both_ends")


@dataclass
class TrainConfig:
    # run
    out_dir: str = "runs/world"
    seed: int = 0
    resume: bool = True  # continue from out_dir/checkpoint when it exists
    max_steps: int = 2000
    # data: "world" (rendered on the fly) or a folder with captions.jsonl / captions.csv
    data: str = "world"
    buckets: tuple[str, ...] = ("32x32x9", "48x32x9", "32x48x9", "32x32x17", "32x32x1")
    image_fraction: float = 0.2  # share of batches that are still images (world data)
    holdout: bool = False  # world data: leave out cinepatch.data.world.HOLDOUT combinations
    fps: int = 8
    caption_dropout: float = 0.1  # empty caption → the model learns the unconditional velocity
    # A layout-grounded DiT (dit.layout_dim > 0) reads each clip's scene-plan boxes; this share of
    # clips (and every clip whose caption is dropped) trains without them, so text-only
    # generation keeps learning and guidance can push toward the layout.
    layout_dropout: float = 0.2
    cond_prob: float = 0.3  # share of clips with a conditioning mask (first, last, chunk, …)
    cond_kinds: tuple[str, ...] = COND_KINDS  # drawn uniformly; repeat a kind to weight it
    latent_cache: int = 0  # >0: train on this many distinct clips per bucket, encoded once
    # model
    model: str = "tiny"  # a preset of cinepatch.models.dit.PRESETS
    dit: dict[str, Any] = field(default_factory=dict)  # preset overrides (dit.KEY=VALUE)
    init_from: str = ""  # a pipeline folder whose DiT weights start a fresh run (fine-tuning)
    vae_path: str = ""  # a trained CausalVAE folder (frozen); "" builds one from vae_preset
    vae_preset: str = "tiny"  # used only without vae_path: a random frozen VAE (tests, smoke)
    vae: dict[str, Any] = field(default_factory=dict)  # overrides of that preset (vae.KEY=VALUE)
    text_encoder: dict[str, Any] = field(default_factory=lambda: {"kind": "minilm"})
    # rectified flow
    timestep_shift: float = 1.0  # >1 spends more steps at high noise (SD3's shift)
    timestep_unshifted: float = 0.0  # share of clips whose time skips the shift (low-noise detail)
    # world data: the loss on latent cells an object covers counts 1 + object_weight times, so
    # objects of a few pixels are not drowned by the background they sit on (0: plain MSE)
    object_weight: float = 0.0
    # optimisation
    batch_size: int = 16  # global: split evenly across ranks
    lr: float = 5e-4
    min_lr: float = 5e-5
    warmup_steps: int = 100
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    # system
    parallel: str = "ddp"  # "ddp" or "fsdp" (shards parameters, gradients, optimizer state)
    dtype: str = "float32"  # "bfloat16": autocast (slower than fp32 on CPUs without AMX)
    compile: bool = False
    threads: int = 0  # torch threads per rank; 0: cores / local ranks
    # logging, checkpoints, samples
    log_every: int = 10
    ckpt_every: int = 100
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
        if not self.cond_kinds or any(k not in COND_KINDS for k in self.cond_kinds):
            raise InvalidParameter("cond_kinds", list(self.cond_kinds), f"one or more of {list(COND_KINDS)}")
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
# Helpers: LR schedule, EMA, conditioning masks
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
def draw_cond_mask(
    frames: int, rng: np.random.Generator, prob: float, kinds: tuple[str, ...] = COND_KINDS
) -> tuple[str, np.ndarray]:
    """A conditioning kind and its ``(frames,)`` mask over latent frames (never all ones).
    The kind is drawn uniformly from ``kinds`` (repeat one to weight it); clips of two frames
    draw only from those that fit them."""
    mask = np.zeros(frames, dtype=np.float32)
    if frames >= 3:
        fit = kinds
    else:
        fit = tuple(k for k in kinds if k in ("first", "last", "leading", "trailing"))
    if frames < 2 or not fit or rng.random() >= prob:
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


def _split_patches(
    state: dict[str, torch.Tensor], old: tuple[int, ...], new: tuple[int, ...], channels: int
) -> dict[str, torch.Tensor]:
    """Re-cut a DiT's patch layers to smaller patches: each new side must divide the old one
    (e.g. [4,4,4] → [2,4,4]: twice the tokens in time, finer motion; [2,4,4] → [2,2,2]: four
    times the tokens in space, finer shapes). The input embedding of a small patch is the sum
    of the big patch's sub-kernels — on a clip that is constant over each big patch, each small
    token embeds as the big one did — and each output row is the mean of the big patch's rows
    for the same place in the small patch. Everything else (the blocks, RoPE by grid index) is
    shape-free and loads as is; training re-learns the rest."""
    if len(old) != 3 or len(new) != 3 or any(o % n for o, n in zip(old, new)):
        raise InvalidParameter("dit.patch", list(new), f"each side a divisor of the saved patch {list(old)}")
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


def _init_dit(model: torch.nn.Module, folder: Path) -> None:
    """Load a pipeline folder's DiT weights into ``model`` (same shapes, or patches re-cut to
    smaller ones by ``_split_patches``; a refiner the folder lacks keeps its
    initialisation, and self-conditioning inputs it lacks start at zero weight — neither
    changes what the model predicts). When the folder's model predicted
    something else (v vs x), its output layer starts from zero again, as a new one."""
    from safetensors.torch import load_file

    saved = json.loads((folder / "config.json").read_text(encoding="utf-8"))["dit"]
    state = load_file(str(folder / "dit.safetensors"))
    old_patch, new_patch = tuple(saved.get("patch", model.config.patch)), tuple(model.config.patch)
    if old_patch != new_patch:
        state = _split_patches(state, old_patch, new_patch, model.config.in_channels)
    if model.config.self_cond and not saved.get("self_cond", False):
        # The estimate's input channels come last; zero weights: the model starts as it was.
        w = state["x_embedder.weight"]  # (D, (2C + 1)·p_t·p_h·p_w)
        extra = model.config.in_channels * model.config.patch_volume
        state["x_embedder.weight"] = torch.cat([w, w.new_zeros(w.shape[0], extra)], dim=1)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if not saved.get("refiner", 0):  # a refiner added to a DiT without one starts as its zero-init
        missing = [k for k in missing if not k.startswith("refiner.")]
    if unexpected or missing:
        raise InvalidParameter("init_from", str(folder), "a DiT of the same shape", hint=f"{missing or unexpected}")
    if saved.get("prediction", "v") != model.config.prediction:
        final = model.final_layer
        for layer in (final.adaLN_modulation[-1], final.linear):
            torch.nn.init.zeros_(layer.weight)
            torch.nn.init.zeros_(layer.bias)


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


# ---------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------


def main(config: TrainConfig) -> dict[str, Any]:
    """Train; returns a summary (``step``, ``loss``, ``out_dir``) on rank 0 (``{}`` elsewhere)."""
    import torch.distributed as dist
    import torch.nn.functional as F

    from cinepatch import flow
    from cinepatch.data import BatchStream, FolderSource, WorldSource, parse_buckets
    from cinepatch.io.atomic import atomic_dir
    from cinepatch.models.dit import DiT, DiTConfig, PRESETS, forward_flops
    from cinepatch.models.text import load_text_encoder
    from cinepatch.models.vae import PRESETS as VAE_PRESETS, CausalVAE, VAEConfig
    from cinepatch.pipeline import Pipeline, SamplerConfig, layout_batch
    from cinepatch.planning.maps import latent_maps

    # -- distributed setup: torchrun sets RANK / WORLD_SIZE / LOCAL_RANK ----------------------
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
    master = rank == 0
    if device.type == "cpu":
        # Ranks on one machine share its cores; oversubscribing them makes every rank slower.
        torch.set_num_threads(config.threads or max(1, (os.cpu_count() or 1) // local_world))
    if config.batch_size % world:
        raise InvalidParameter("batch_size", config.batch_size, f"a multiple of the world size {world}")
    out = Path(config.out_dir)
    random.seed(config.seed + rank)
    np.random.seed(config.seed + rank)
    torch.manual_seed(config.seed)  # same initial weights on every rank (DDP also broadcasts)

    def log(message: str) -> None:
        if master:
            print(message, flush=True)

    # -- frozen parts: text encoder and VAE ---------------------------------------------------
    text_encoder = load_text_encoder(config.text_encoder)
    if config.vae_path:
        vae = CausalVAE.from_pretrained(config.vae_path)
    else:
        if config.vae_preset not in VAE_PRESETS:
            raise InvalidParameter("vae_preset", config.vae_preset, ", ".join(VAE_PRESETS))
        vae_config = dataclasses.replace(VAE_PRESETS[config.vae_preset], **_tuples(config.vae, VAEConfig))
        vae = CausalVAE(vae_config)  # random and frozen: only for tests and smoke runs
        log(f"note: no vae_path, using an untrained '{config.vae_preset}' VAE (frozen)")
    vae = vae.to(device).eval().requires_grad_(False)

    # -- the DiT, EMA and optimizer --------------------------------------------------------------
    if config.model not in PRESETS:
        raise InvalidParameter("model", config.model, ", ".join(PRESETS))
    unknown = sorted(set(config.dit) - {f.name for f in dataclasses.fields(DiTConfig)})
    if unknown:
        raise InvalidParameter("dit", unknown, "fields of DiTConfig")
    dit_config = dataclasses.replace(
        PRESETS[config.model],
        **_tuples(config.dit, DiTConfig),
        in_channels=vae.config.latent_channels,
        text_dim=text_encoder.dim,
    )
    model = DiT(dit_config).to(device)
    ema = EMA(model, config.ema_decay)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"DiT {config.model}: {n_params / 1e6:.2f}M parameters, world size {world}, device {device}")
    if distributed and config.parallel == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for block in model.blocks:
            fully_shard(block)
        fully_shard(model)
        wrapped: torch.nn.Module = model
    elif distributed:
        from torch.nn.parallel import DistributedDataParallel as DDP

        wrapped = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    else:
        wrapped = model
    if config.compile:
        wrapped = torch.compile(wrapped)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, betas=(config.beta1, config.beta2), weight_decay=config.weight_decay
    )

    # -- resume ---------------------------------------------------------------------------------
    step = 0
    ckpt_path = out / "checkpoint" / "state.pt"
    if not ckpt_path.exists() and (out / ".checkpoint.old" / "state.pt").exists():
        ckpt_path = out / ".checkpoint.old" / "state.pt"  # killed between atomic_dir's two renames
    if config.resume and ckpt_path.exists():
        state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        _load_model_and_optimizer(model, optimizer, state, fsdp=distributed and config.parallel == "fsdp")
        ema.load_state_dict(state["ema"])
        vae.load_state_dict(state["vae"])
        step = int(state["step"])
        rng_states = state["rng"]
        if len(rng_states) == world:
            _set_rng_state(rng_states[rank])
        log(f"resumed from {ckpt_path} at step {step}")
        metrics = out / "metrics.jsonl"
        if master and metrics.exists():  # drop lines logged after the checkpoint (a killed run)
            lines = metrics.read_text(encoding="utf-8").splitlines()
            kept = [line for line in lines if line.strip() and json.loads(line)["step"] <= step]
            metrics.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
    else:
        if config.init_from:
            _init_dit(model, Path(config.init_from))
            ema = EMA(model, config.ema_decay)
            log(f"initialised the DiT from {config.init_from}")
        if master and (out / "metrics.jsonl").exists():
            (out / "metrics.jsonl").unlink()  # a fresh run: don't mix curves

    # -- data -----------------------------------------------------------------------------------
    multiple = vae.config.spatial_compression * math.lcm(dit_config.patch[1], dit_config.patch[2])
    buckets = parse_buckets(config.buckets, multiple=multiple)
    if config.data == "world":
        source = WorldSource(
            buckets, fps=config.fps, seed=config.seed, image_fraction=config.image_fraction, holdout=config.holdout,
            focus=config.object_weight > 0, layout=dit_config.layout_dim > 0,
        )
    else:
        source = FolderSource(config.data, buckets, fps=config.fps, seed=config.seed)
    stream = BatchStream(source, batch_size=config.batch_size, seed=config.seed, rank=rank, world_size=world)
    cache: dict[tuple[Any, int], tuple[torch.Tensor, str, torch.Tensor | None, Any]] = {}
    if config.latent_cache:  # the cached clips' captions come back too: keep their embeddings
        text_encoder.cache_size = max(text_encoder.cache_size, config.latent_cache * len(buckets) + 1)

    def latents_for(plan: Any) -> tuple[torch.Tensor, list[str], torch.Tensor | None, list[Any]]:
        """This rank's clips of the step as VAE latents, captions, per-cell loss weights
        (``None`` without ``object_weight``) and box maps (``None`` per clip without a
        layout-grounded DiT), memoised."""
        keys = [(plan.bucket, i % config.latent_cache if config.latent_cache else i) for i in plan.indices]
        store = cache if config.latent_cache else {}
        for key in keys:
            if key not in store:
                clip = source.get(*key)
                with torch.no_grad():  # one clip at a time: a latent must not depend on its batch-mates
                    latent = vae.encode(clip.video[None].to(device))[0]  # (C, t, h, w)
                weights = None
                if config.object_weight:  # else plain MSE: no per-cell weights stored at all
                    weights = cell_weights(clip.focus, tuple(latent.shape[1:]), config.object_weight)
                maps = None
                if dit_config.layout_dim:
                    if clip.layout is None:
                        raise InvalidParameter("data", config.data, "a source with scene plans (world) for a layout-grounded DiT")
                    occupancy, uv = latent_maps(clip.layout, latent=tuple(latent.shape[1:]), frame_step=vae.config.temporal_compression)
                    maps = (torch.from_numpy(occupancy), torch.from_numpy(uv), clip.layout.phrases)
                store[key] = (latent, clip.caption, weights, maps)
        latents, captions, weights, maps = zip(*(store[k] for k in keys))
        cell_weight = torch.stack(weights).to(device) if weights[0] is not None else None
        return torch.stack(latents), list(captions), cell_weight, list(maps)

    # -- checkpoints and samples ----------------------------------------------------------------
    def pipeline_from_ema() -> Pipeline:
        # Sample at the noise levels the run trained on: its timestep shift.
        return Pipeline(
            dit=ema.model, vae=vae, text_encoder=text_encoder, text_spec=dict(config.text_encoder),
            sampler=SamplerConfig(shift=config.timestep_shift), device=device,
        )

    def save_checkpoint(loss: float) -> None:
        fsdp = distributed and config.parallel == "fsdp"
        model_state, optim_state = _full_states(model, optimizer, fsdp=fsdp)
        rng_states = [None] * world
        if distributed:
            dist.all_gather_object(rng_states, _rng_state())
        else:
            rng_states = [_rng_state()]
        if master:
            state = {
                "step": step,
                "config": dataclasses.asdict(config),
                "dit_config": dit_config.to_dict(),
                "model": model_state,
                "optimizer": optim_state,
                "ema": ema.state_dict(),
                "vae": vae.state_dict(),
                "rng": rng_states,
            }
            with atomic_dir(out / "checkpoint") as tmp:
                torch.save(state, tmp / "state.pt")
            meta = {"step": step, "loss": loss, "data": config.data, "config": dataclasses.asdict(config)}
            pipeline_from_ema().save_pretrained(out / "pipeline", training=meta)
        if distributed:
            dist.barrier()

    def write_samples() -> None:
        if not master:
            return
        from cinepatch.io.video import write_strip, write_video

        shape = max((b for b in buckets), key=lambda b: (b.frames, b.width * b.height))
        videos = pipeline_from_ema().generate(
            list(config.sample_prompts), frames=shape.frames, width=shape.width, height=shape.height,
            fps=config.fps, seed=config.seed, steps=config.sample_steps, guidance=config.sample_guidance,
            negative=None, progress=False,
        )
        for i, frames in enumerate(videos):
            base = out / "samples" / f"step{step:07d}_{i}"
            if len(frames) > 1:
                write_video(base.with_suffix(".mp4"), frames, fps=config.fps)
            write_strip(base.with_suffix(".png"), frames)

    # -- the training loop --------------------------------------------------------------------
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.dtype == "bfloat16")
    peak = _peak_flops(device, config, local_world)
    window_loss, window_steps, window_samples, window_flops = 0.0, 0, 0, 0.0
    window_start = time.perf_counter()
    loss_value = float("nan")
    while step < config.max_steps:
        lr = lr_at(step, config)
        for group in optimizer.param_groups:
            group["lr"] = lr
        plan = stream.plan(step)
        x0, captions, cell_weight, maps = latents_for(plan)  # (b, C, t, h, w), b captions, (b, t, h, w), b maps
        b, b_global = x0.shape[0], config.batch_size
        lo, hi = plan.offset, plan.offset + b

        # Every random draw covers the *global* batch from (seed, step); a rank keeps its slice.
        rng = np.random.default_rng(_step_seed(config.seed, step, 1))
        drop = rng.random(b_global) < config.caption_dropout
        masks = np.stack(
            [draw_cond_mask(x0.shape[2], rng, config.cond_prob, config.cond_kinds)[1] for _ in range(b_global)]
        )
        gen = torch.Generator().manual_seed(_step_seed(config.seed, step, 2))
        t = flow.sample_timesteps(
            b_global, generator=gen, shift=config.timestep_shift, unshifted=config.timestep_unshifted
        )[lo:hi].to(device)
        noise = torch.randn((b_global, *x0.shape[1:]), generator=gen)[lo:hi].to(device)
        no_layout = drop | (np.random.default_rng(_step_seed(config.seed, step, 3)).random(b_global) < config.layout_dropout)

        prompts = ["" if d else c for d, c in zip(drop[lo:hi], captions)]
        for prompt in prompts:  # one at a time: an embedding must not depend on its batch-mates,
            text_encoder.encode([prompt])  # or a resumed run would drift (the encoder caches it)
        text = text_encoder.encode(prompts)
        cond_mask = torch.from_numpy(masks[lo:hi]).to(device)  # (b, t)
        keep = cond_mask[:, None, :, None, None]  # (b, 1, t, 1, 1)
        cond_latents = x0 * keep
        t_ = t.view(-1, 1, 1, 1, 1)
        x_t = (1 - t_) * x0 + t_ * noise
        x_t = keep * x0 + (1 - keep) * x_t  # conditioned frames are given clean, as at sampling
        target = noise - x0  # the velocity

        inputs = dict(
            text_states=text.states.to(device), text_mask=text.mask.to(device),
            text_pooled=text.pooled.to(device), cond_mask=cond_mask, cond_latents=cond_latents,
        )
        if dit_config.layout_dim:
            kept = [None if d else m for d, m in zip(no_layout[lo:hi], maps)]
            inputs.update({k: v.to(device) for k, v in layout_batch(kept, text_encoder, latent=tuple(x0.shape[2:])).items()})
        if dit_config.self_cond:
            # Half the clips see the model's own clean estimate from a first, gradient-free
            # pass (as the sampler will give it), the other half zeros (its first step).
            use = torch.from_numpy(rng.random(b_global) < 0.5)[lo:hi].to(device)
            x_self = torch.zeros_like(x0)
            if bool(use.any()):
                with torch.no_grad(), autocast:
                    first = wrapped(x_t, t, **inputs, x_self=x_self)
                x_self = torch.where(use.view(-1, 1, 1, 1, 1), x_t - t_ * first.float(), x_self)
            inputs["x_self"] = x_self
        with autocast:
            v = wrapped(x_t, t, **inputs)
        # Per-clip mean over the unconditioned frames, then the batch mean: the same number
        # whatever the world size, because DDP averages the ranks' equal-sized batches.
        weight = ((1 - keep) if cell_weight is None else (1 - keep) * cell_weight[:, None]).expand_as(x0)
        err = F.mse_loss(v.float(), target, reduction="none") * weight
        loss = (err.flatten(1).sum(1) / weight.flatten(1).sum(1).clamp_min(1)).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        ema.update(model)
        step += 1

        # -- logging: loss, samples/s, MFU ------------------------------------------------------
        window_loss += loss.item()
        window_steps += 1
        window_samples += b_global
        window_flops += 3 * forward_flops(dit_config, tuple(x0.shape[2:]), text_len=text.states.shape[1], batch=b_global)["flops"]
        if step % config.log_every == 0 or step == config.max_steps:
            loss_value = window_loss / window_steps
            if distributed:
                reduced = torch.tensor([loss_value], dtype=torch.float64)
                dist.all_reduce(reduced)
                loss_value = reduced.item() / world
            elapsed = time.perf_counter() - window_start
            record = {
                "step": step,
                "loss": round(loss_value, 6),
                "lr": lr,
                "samples_per_s": round(window_samples / elapsed, 2),
                "mfu": round(window_flops / elapsed / (peak * world), 5),
                "bucket": str(plan.bucket),
            }
            if master:
                out.mkdir(parents=True, exist_ok=True)
                with open(out / "metrics.jsonl", "a", encoding="utf-8") as handle:
                    handle.write(json.dumps(record) + "\n")
            log(
                f"step {step:6d} | loss {loss_value:.4f} | lr {lr:.2e} | "
                f"{record['samples_per_s']:.1f} samples/s | MFU {100 * record['mfu']:.2f}%"
            )
            window_loss, window_steps, window_samples, window_flops = 0.0, 0, 0, 0.0
            window_start = time.perf_counter()
        if step % config.ckpt_every == 0 or step == config.max_steps:
            save_checkpoint(loss_value)
        if config.sample_every and step % config.sample_every == 0 and step != config.max_steps:
            write_samples()

    # -- finish ---------------------------------------------------------------------------------
    if config.max_steps == step and config.sample_prompts:
        write_samples()
    summary = {"step": step, "loss": loss_value, "out_dir": str(out)} if master else {}
    if distributed:
        dist.barrier()
        dist.destroy_process_group()
    return summary


def _tuples(overrides: dict[str, Any], cls: type) -> dict[str, Any]:
    """JSON lists → tuples for dataclass fields, unknown keys an error."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise InvalidParameter(cls.__name__, unknown, "fields among " + ", ".join(sorted(known)))
    return {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}


def cell_weights(focus: torch.Tensor | None, cells: tuple[int, int, int], object_weight: float) -> torch.Tensor:
    """Loss weight per latent cell ``(t, h, w)``: 1, plus ``object_weight`` × the largest object
    coverage among the pixels the cell encodes (``focus (T, H, W)``; none given: all ones)."""
    if object_weight <= 0 or focus is None:
        return torch.ones(cells)
    covered = torch.nn.functional.adaptive_max_pool3d(focus[None].float(), cells)[0]  # (t, h, w)
    return 1.0 + object_weight * covered


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


if __name__ == "__main__":  # python -m cinepatch.train … (also under torchrun)
    from cinepatch.cli import main as cli_main

    sys.exit(cli_main(["train", *sys.argv[1:]]))
