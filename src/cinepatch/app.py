"""The one entry every request takes — CLI, HTTP service and Python API alike.

::

    VideoRequest
      → moderate the prompt (and negative prompt)         safety.check_prompt
      → review every input image/video                   safety.check_frames(stage="input")
      → apply the style preset, expand the prompt        presets, expand
      → plan the scene (boxes over time), or fit the      planning
        user's plan to the canvas
      → build the backend-neutral spec (edits)           editing
      → generate                                         backends (embedded, world, diffusers)
      → smooth a flickering model's frames in time       io.denoise
      → review sampled output frames                     safety.check_frames(stage="output")
      → visible mark → invisible watermark → atomic write → C2PA → ledger
                                                         provenance.finish
      → VideoResult

Nothing in this file may be skipped by a caller: :meth:`Studio.create` is the only public way
to make a video, and it does every step in this order. A refused or failed request writes
nothing.
"""

from __future__ import annotations

import dataclasses
import secrets
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

import numpy as np

from cinepatch import __version__
from cinepatch.backends.base import EDITS, Backend, GenerationSpec
from cinepatch.config import StudioConfig
from cinepatch import limits
from cinepatch.errors import InvalidParameter, ModelError
from cinepatch.expand import ChatExpander, Expander, NoExpander, WorldExpander

if TYPE_CHECKING:
    from cinepatch import editing
    from cinepatch.planning import ChatPlanner, PlanResult, ScenePlan, WorldPlanner

__all__ = ["VideoRequest", "VideoResult", "Studio", "MAX_PROMPT_CHARS", "MAX_SECONDS"]

MAX_PROMPT_CHARS = int(limits.PROMPT_CHARS.high)
MAX_SECONDS = float(limits.SECONDS.high)
MAX_SEED = int(limits.SEED.high)
DEFAULT_FPS = 16


@dataclass(frozen=True)
class VideoRequest:
    """What a person asks for. Validated on construction; every error names the parameter."""

    prompt: str
    seconds: float | None = 4.0
    frames: int | None = None  # overrides ``seconds`` when given
    width: int | None = None  # None (both): the model's native size
    height: int | None = None
    fps: int | None = None  # None: the preset's, else the model's
    seed: int | None = None  # None: a random seed, reported in the result
    model: str = "default"
    steps: int | None = None
    guidance: float | None = None
    negative: str = ""
    preset: str | None = None
    expand: bool = True
    edit: str | None = None  # None: text-to-video; else one of backends.base.EDITS
    sources: tuple[Path, ...] = ()
    params: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))
    plan: ScenePlan | None = None  # the user's own scene plan (of the output, edits included)

    def __post_init__(self) -> None:
        _check_types(self)
        if self.plan is not None:
            from cinepatch.planning import ScenePlan

            if not isinstance(self.plan, ScenePlan):
                raise InvalidParameter("plan", type(self.plan).__name__, "a ScenePlan (cinepatch.planning)")
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise InvalidParameter("prompt", self.prompt, "a non-empty text")
        limits.check_text(self.prompt, name="prompt")  # valid Unicode, no NUL, not too long
        limits.check_text(self.negative, name="negative")
        if self.fps is not None:
            limits.FPS.check(self.fps)
        if self.frames is not None:
            if not 1 <= self.frames <= MAX_SECONDS * self.frame_rate:
                raise InvalidParameter("frames", self.frames, f"1 to {int(MAX_SECONDS * self.frame_rate)}")
        elif self.seconds is None:
            raise InvalidParameter("seconds", self.seconds, limits.SECONDS.describe())
        else:
            limits.SECONDS.check(self.seconds)
        for side in ("width", "height"):
            if getattr(self, side) is not None:
                limits.SIDE.check(getattr(self, side), name=side)
        if (self.width is None) != (self.height is None):
            raise InvalidParameter("size", (self.width, self.height), "both width and height, or neither")
        for limit, value in ((limits.SEED, self.seed), (limits.STEPS, self.steps), (limits.GUIDANCE, self.guidance)):
            if value is not None:
                limit.check(value)
        if self.edit is not None and self.edit not in EDITS:
            raise InvalidParameter("edit", self.edit, f"one of {', '.join(EDITS)}")

    @property
    def frame_rate(self) -> int:
        return self.fps if self.fps is not None else DEFAULT_FPS

    @property
    def frame_count(self) -> int:
        if self.frames is not None:
            return self.frames
        assert self.seconds is not None
        return max(1, round(self.seconds * self.frame_rate))


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_types(request: VideoRequest) -> None:
    """Wrong types are parameter errors too (a JSON body can carry anything)."""
    for name in ("frames", "fps", "seed", "steps"):
        value = getattr(request, name)
        if value is not None and not _is_int(value):
            raise InvalidParameter(name, value, "a whole number")
    for name in ("seconds", "guidance"):
        value = getattr(request, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value != value):
            raise InvalidParameter(name, value, "a number")
    for name in ("width", "height"):
        if getattr(request, name) is not None and not _is_int(getattr(request, name)):
            raise InvalidParameter(name, getattr(request, name), "a whole number of pixels")
    for name in ("prompt", "negative", "model"):
        if not isinstance(getattr(request, name), str):
            raise InvalidParameter(name, getattr(request, name), "a text")


@dataclass(frozen=True)
class VideoResult:
    path: Path
    width: int
    height: int
    fps: int
    frames: int
    seconds: float
    prompt: str
    expanded_prompt: str
    model: str
    seed: int
    payload: str  # the invisible watermark's payload, hex: the generation's identifier
    warnings: tuple[str, ...] = ()
    plan: ScenePlan | None = None  # the scene plan the model was given, if any


ProgressFn = Callable[[float], None]


class Studio:
    """Makes videos for one installation (its models, keys, ledger and settings)."""

    def __init__(self, config: StudioConfig) -> None:
        self.config = config
        self._backends: dict[str, Backend] = {}

    # -- models ------------------------------------------------------------------------------

    def backend(self, model: str) -> tuple[Backend, tuple[str, ...]]:
        """The backend for a model alias or folder, loaded once; plus warnings about the choice."""
        target = self.config.models.get(model, model)
        notes: tuple[str, ...] = ()
        if target == "embedded":
            from cinepatch.backends.embedded import shipped_model_dir

            if shipped_model_dir() is None:
                target = "world"
                notes = (
                    "this build ships no trained default model yet; the world oracle (the "
                    "ground-truth renderer of the procedural world) stands in",
                )
        if target not in self._backends:
            self._backends[target] = _load_backend(target, self.config)
        return self._backends[target], notes

    def _expander(self, request: VideoRequest) -> Expander:
        if not request.expand:
            return NoExpander()
        settings = self.config.expansion
        if settings.backend == "chat":
            return ChatExpander(base_url=settings.url, model=settings.model, api_key=settings.api_key)
        return WorldExpander()

    def planner(self) -> WorldPlanner | ChatPlanner:
        """The chat planner when expansion uses an endpoint (its settings), else the world's."""
        from cinepatch.planning import ChatPlanner, WorldPlanner

        settings = self.config.expansion
        if settings.backend == "chat":
            return ChatPlanner(base_url=settings.url, model=settings.model, api_key=settings.api_key)
        return WorldPlanner()

    def _passes(self, request: VideoRequest, backend: Backend, spec: GenerationSpec, inputs: list, *,
                expand: Callable[[str], str], safety_config) -> tuple:  # -> (editing.Plan, PlanResult)
        """The scene plan (the planner's, the user's or the edit's) and the passes that make the
        video; a chat planner's phrases are moderated like the user's words."""
        from cinepatch import editing, safety
        from cinepatch.planning import PlanResult

        planned = self._plan(request, backend, spec, request.prompt)
        for text in _phrases(planned.plan) if planned.planner == "chat" else ():
            safety.check_prompt(text, config=safety_config)  # an endpoint's words, like the user's
        planning, spec = self._edit_planning(request, backend, spec, planned, safety_config)
        plan = editing.plan(
            request.edit, spec, inputs, request.params, window=backend.max_frames, latent_step=backend.latent_step,
            prompt=request.prompt, expand=expand, planning=planning,
        )
        if planning is not None:  # the plan stored with the output is the one the edit made
            planned = PlanResult(plan.scene, "user" if planning.user is not None else "edit", planned.warnings)
        return plan, planned

    def _moderate(self, request: VideoRequest):  # -> safety.SafetyConfig
        """Check every text of ``request`` (prompt, negative, edit texts, plan phrases); raise
        :class:`Refused` on the first refused one. Returns the settings later checks reuse."""
        from cinepatch import safety

        moderation = self.config.moderation
        safety_config = safety.SafetyConfig(
            endpoint=moderation.url or None,
            api_key=moderation.api_key or None,
            model=moderation.model or None,
            fail_closed=moderation.fail_closed,
        )
        for text in (request.prompt, request.negative, *_texts(request.params), *_phrases(request.plan)):
            if text:
                safety.check_prompt(text, config=safety_config)
        return safety_config

    def _finish(self, frames: np.ndarray, *, fps: int, out: Path, record) -> int:  # record: provenance.Record
        """Mark, watermark, write, sign and record ``frames``; returns the watermark payload."""
        from cinepatch import provenance

        with provenance.Ledger(self.config.ledger_path) as ledger:
            payload = ledger.new_payload()  # 32 bits, unused in this installation's ledger
        settings = provenance.Settings(
            visible_mark=self.config.visible_mark,
            keys_dir=self.config.keys_dir,
            cert=self.config.c2pa_cert,
            key=self.config.c2pa_key,
            ledger=self.config.ledger_path,
        )
        provenance.finish(frames, fps=fps, out=out, payload=payload, settings=settings, record=record)
        return payload

    def _plan(self, request: VideoRequest, backend: Backend, spec: GenerationSpec, text: str) -> PlanResult:
        """The scene plan for ``spec``: the user's, fitted to its canvas; else, for a backend
        that reads plans, the planner's (chat when expansion uses an endpoint, else the world)."""
        from cinepatch.planning import PlanResult

        takes_plan = backend.takes_plan
        if request.plan is not None:
            if not takes_plan:
                note = f"{backend.name} does not read scene plans; it is generated from the text"
                return PlanResult(None, "user", (note,))
            if request.edit is not None:  # the edit knows its output's length and fits the plan to it
                return PlanResult(_fit_canvas(request.plan, spec), "user")
            return PlanResult(_fit_plan(request.plan, spec), "user")
        if not takes_plan:
            if request.edit is not None:
                return PlanResult(None, "none", (f"{backend.name} does not read scene plans; the edit follows its sources alone",))
            return PlanResult(None, "none")
        canvas = {"width": spec.width, "height": spec.height, "fps": spec.fps, "frames": spec.frames}
        result = self.planner().plan(text, **canvas, seed=spec.seed)
        if result.plan is None and request.edit is not None:
            return PlanResult(None, "edit")  # an edit plans from its sources; the prompt may name nothing new
        if result.plan is None:
            note = "no planner could plan this prompt, so it is generated from the text alone"
            return PlanResult(None, result.planner, (*result.warnings, note))
        return result

    def _edit_planning(self, request: VideoRequest, backend: Backend, spec: GenerationSpec, planned: PlanResult,
                       safety_config) -> tuple[editing.Planning | None, GenerationSpec]:  # noqa: ANN001
        """What an edit plans with on a backend that reads plans (None otherwise), and the spec:
        an edit's passes each get their window of the edit's plan, text-to-video the plan itself."""
        from cinepatch import editing

        if request.edit is None or not getattr(backend, "takes_plan", False):
            return None, dataclasses.replace(spec, plan=planned.plan)
        planning = editing.Planning(
            prompt=None if planned.planner == "user" else planned.plan,
            user=planned.plan if planned.planner == "user" else None,
            plan_text=lambda text, count: self._plan_text(text, spec, count, safety_config),
        )
        return planning, dataclasses.replace(spec, plan=None)

    def _plan_text(self, text: str, spec: GenerationSpec, frames: int, safety_config) -> ScenePlan | None:  # noqa: ANN001
        """The planner's plan of another prompt an edit brings (a mix's, a card's) over ``frames``."""
        from cinepatch import safety

        result = self.planner().plan(text, width=spec.width, height=spec.height, fps=spec.fps, frames=frames, seed=spec.seed)
        for phrase in _phrases(result.plan) if result.planner == "chat" else ():
            safety.check_prompt(phrase, config=safety_config)  # an endpoint's words, like the user's
        return result.plan

    # -- the one entry -----------------------------------------------------------------------

    def create(
        self, request: VideoRequest, *, out: str | Path, progress: ProgressFn | None = None
    ) -> VideoResult:
        """Make the video ``request`` asks for and write it, marked and signed, to ``out``."""
        from cinepatch import editing, provenance, safety
        from cinepatch.io.denoise import temporal_denoise
        from cinepatch.presets import apply_preset

        out = Path(out)
        report = progress or (lambda fraction: None)

        # 1. Moderation comes first: a refused prompt costs nothing and writes nothing.
        safety_config = self._moderate(request)

        # 2. Inputs are read and reviewed before any compute.
        inputs = editing.load_sources(request.sources)
        for media in inputs:
            safety.check_frames(media.frames, stage="input")

        # 3. Preset settings, expansion, then the preset decorates the expanded prompt.
        request, preset = apply_preset(request, self.config.presets_path)
        backend, notes = self.backend(request.model)
        request = _native_defaults(request, backend)
        expander = self._expander(request)

        def expand(text: str):  # an external expander's words are moderated like the user's
            result = expander.expand(text)
            if result.expanded != text:
                safety.check_prompt(result.expanded, config=safety_config)
            return result

        expansion = expand(request.prompt)
        seed = request.seed if request.seed is not None else secrets.randbelow(2**31)
        frames, frame_notes = _frames_for(backend, request)
        spec = GenerationSpec(
            prompt=preset.decorate(expansion.expanded),
            negative=request.negative,
            frames=frames,
            width=request.width,
            height=request.height,
            fps=request.frame_rate,
            seed=seed,
            steps=request.steps,
            guidance=request.guidance,
        )
        plan, planned = self._passes(
            request, backend, spec, inputs, expand=lambda text: preset.decorate(expand(text).expanded),
            safety_config=safety_config,
        )
        for step in plan.specs:
            backend.check(step)
        report(0.02)

        # 4. Generate (an edit may take several passes), smooth a flickering model's frames in
        #    time over the whole video (across an edit's handovers too), review what came out.
        frames = plan.run(backend, progress=lambda f: report(0.02 + 0.88 * f))
        smoothed = backend.flickers and len(frames) > 1
        if smoothed:
            frames = temporal_denoise(frames, cyclic=plan.cyclic)
        safety.check_frames(frames, stage="output")
        report(0.92)

        # 5. Provenance: visible mark → invisible watermark → atomic write → C2PA → ledger.
        record = provenance.Record(
            prompt=request.prompt,
            expanded_prompt=expansion.expanded,
            model=backend.name,
            software=f"cinepatch {__version__}",
            action="c2pa.edited" if request.sources else "c2pa.created",  # a loop from a prompt is made, not edited
            edit=request.edit,
            sources=tuple(str(path) for path in request.sources),
            parameters={
                **_parameters(request, seed),
                # The plan the model was given, so the video can be re-planned or re-rendered.
                "plan": None if planned.plan is None else planned.plan.to_dict(),
                "planner": planned.planner,
                "temporal_denoise": smoothed,  # the frames were smoothed in time after the model
            },
        )
        payload = self._finish(frames, fps=request.frame_rate, out=out, record=record)
        report(1.0)
        all_warnings = notes + frame_notes + expansion.warnings + planned.warnings + plan.warnings
        for message in all_warnings:
            warnings.warn(message, stacklevel=2)
        return VideoResult(
            path=out,
            width=request.width,
            height=request.height,
            fps=request.frame_rate,
            frames=int(len(frames)),
            seconds=len(frames) / request.frame_rate,
            prompt=request.prompt,
            expanded_prompt=expansion.expanded,
            model=backend.name,
            seed=seed,
            payload=f"{payload:08x}",
            warnings=all_warnings,
            plan=planned.plan,
        )


def _native_defaults(request: VideoRequest, backend: Backend) -> VideoRequest:
    """Size and frame rate left open are the model's own (the embedded model's training size)."""
    width, height = backend.default_size
    return dataclasses.replace(
        request,
        width=request.width if request.width is not None else width,
        height=request.height if request.height is not None else height,
        fps=request.fps if request.fps is not None else backend.default_fps,
    )


def _frames_for(backend: Backend, request: VideoRequest) -> tuple[int, tuple[str, ...]]:
    """The frame count to make. A family that makes only ``1 + k·step`` frames (Wan, LTX …)
    gets the next such count when the length was asked in seconds, and says so; a count asked
    with ``frames`` is passed on as it is, for the backend to accept or refuse with neighbours."""
    frames = request.frame_count
    step = backend.frame_step
    if request.frames is not None or step <= 1 or (frames - 1) % step == 0:
        return frames, ()
    made = 1 + step * -(-(frames - 1) // step)
    fps = request.frame_rate
    return made, (
        f"{request.seconds:g} s at {fps} fps is {frames} frames; this model makes {step}n+1, so "
        f"the video has {made} frames ({made / fps:.2f} s)",
    )


def _phrases(plan: ScenePlan | None) -> list[str]:
    return [] if plan is None else [obj.phrase for obj in plan.objects]


def _fit_canvas(plan: ScenePlan, spec: GenerationSpec) -> ScenePlan:
    """``plan`` at ``spec``'s size and frame rate, keeping its duration (an edit's output length
    is the edit's to fit)."""
    if (plan.canvas.width, plan.canvas.height) != (spec.width, spec.height):
        plan = plan.resized(width=spec.width, height=spec.height)
    return plan if plan.canvas.fps == spec.fps else plan.resampled(fps=spec.fps)


def _fit_plan(plan: ScenePlan, spec: GenerationSpec) -> ScenePlan:
    """``plan`` on ``spec``'s canvas: boxes are normalised, so a new size keeps them; a new
    length or frame rate resamples the track in normalised time."""
    if (plan.canvas.width, plan.canvas.height) != (spec.width, spec.height):
        plan = plan.resized(width=spec.width, height=spec.height)
    if (plan.canvas.fps, plan.canvas.frames) != (spec.fps, spec.frames):
        plan = plan.resampled(frames=spec.frames, fps=spec.fps)
    return plan


def _texts(params: Mapping[str, object]) -> list[str]:
    """Every prompt an edit brings besides the main one (a mix's second prompt, card prompts)."""
    texts = [params["with"]] if isinstance(params.get("with"), str) else []
    cards = params.get("cards")
    if isinstance(cards, (list, tuple)):
        texts += [card["prompt"] for card in cards if isinstance(card, Mapping) and isinstance(card.get("prompt"), str)]
    return texts


def _parameters(request: VideoRequest, seed: int) -> dict[str, object]:
    values = {f.name: _jsonable(getattr(request, f.name)) for f in dataclasses.fields(request)}
    values["seed"] = seed
    return values


def _jsonable(value: object) -> object:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, np.ndarray):
        return f"<array {value.shape}>"
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


def _load_backend(target: str, config: StudioConfig) -> Backend:
    if target == "world":
        from cinepatch.backends.world import WorldOracle

        return WorldOracle()
    if target == "embedded":
        from cinepatch.backends.embedded import EmbeddedBackend, shipped_model_dir

        folder = shipped_model_dir()
        if folder is None:
            raise ModelError("the embedded default model's weights are not in this installation")
        return EmbeddedBackend.from_pretrained(folder)
    folder = Path(target).expanduser()
    if not folder.is_dir():
        raise ModelError(
            f"model {target!r} is neither a known alias nor a model folder (aliases: "
            "set them under `models:` in the config)"
        )
    if (folder / "model_index.json").exists():
        from cinepatch.backends.diffusers import DiffusersSettings, load_diffusers_backend

        return load_diffusers_backend(folder, settings=DiffusersSettings.from_dict(config.diffusers))
    from cinepatch.backends.embedded import EmbeddedBackend

    return EmbeddedBackend.from_pretrained(folder)
