"""Reading provenance back: C2PA manifest, invisible watermark, and this installation's ledger.

The three are independent, so a re-encoded copy whose C2PA manifest was stripped is still
recognised by its watermark, and the watermark's payload finds the ledger row if this
installation made it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cinepatch.errors import MediaError, ProvenanceError
from cinepatch.io.video import rgb_array
from cinepatch.provenance import watermark
from cinepatch.provenance.c2pa_sign import ManifestReport, read_manifest
from cinepatch.provenance.ledger import Ledger, LedgerEntry, sha256_file

__all__ = ["VerifyReport", "verify", "read_frames"]

MAX_FRAMES = 240  # frames decoded for the watermark (it is in every frame; 240 is plenty)
MAX_SIDE = 512  # frames are scaled down to at most this side first (detection works at 128)
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp"}


@dataclass(frozen=True)
class VerifyReport:
    path: Path
    sha256: str
    manifest: ManifestReport
    watermark: watermark.Detection | None
    ledger: LedgerEntry | None
    notes: tuple[str, ...] = ()

    @property
    def made_by_cinepatch(self) -> bool:
        """A trusted/valid cinepatch manifest, or the watermark found."""
        signed = self.manifest.state in ("valid", "trusted") and bool(
            self.manifest.claim_generator and "cinepatch" in self.manifest.claim_generator
        )
        return signed or bool(self.watermark and self.watermark.found)

    def to_dict(self) -> dict:
        return {
            "path": str(self.path),
            "sha256": self.sha256,
            "made_by_cinepatch": self.made_by_cinepatch,
            "c2pa": self.manifest.to_dict(),
            "watermark": None if self.watermark is None else self.watermark.to_dict(),
            "ledger": None if self.ledger is None else self.ledger.to_dict(),
            "notes": list(self.notes),
        }

    def text(self) -> str:
        m, w = self.manifest, self.watermark
        lines = [f"{self.path}", f"  sha256      {self.sha256}"]
        if not m.present:
            lines.append("  C2PA        none (no manifest, or it was stripped)")
        else:
            lines.append(f"  C2PA        {m.state}" + (f" — signed by {m.signer}" if m.signer else ""))
            if m.claim_generator:
                lines.append(f"    generator {m.claim_generator}")
            for action in m.actions:
                source = action.get("digitalSourceType", "").rsplit("/", 1)[-1]
                model = (action.get("parameters") or {}).get("model", "")
                lines.append(
                    f"    action    {action.get('action')}"
                    + (f" ({source})" if source else "")
                    + (f" model={model}" if model else "")
                )
            for ing in m.ingredients:
                lines.append(f"    ingredient {ing['title']} ({ing['relationship']})")
            for failure in m.failures:
                lines.append(f"    problem   {failure}")
            if m.error:
                lines.append(f"    error     {m.error}")
        if w is None:
            lines.append("  watermark   not checked")
        elif w.found:
            lines.append(
                f"  watermark   found, payload {w.payload:08x} "
                f"(p ≤ {w.p_value:.1e}, confidence {w.confidence:.6f}, {w.frames} frames)"
            )
        else:
            lines.append(f"  watermark   not found (p = {w.p_value:.2g}; needs ≤ 1e-6)")
        if self.ledger is not None:
            e = self.ledger.to_dict()
            lines.append(f"  ledger      made here {e['created_utc']}: model {e['model']}")
            lines.append(f"    prompt    {e['prompt']!r}")
        else:
            lines.append("  ledger      no entry in this installation's ledger")
        lines += [f"  note        {n}" for n in self.notes]
        return "\n".join(lines)


def read_frames(path: Path, *, max_frames: int = MAX_FRAMES, max_side: int = MAX_SIDE) -> np.ndarray:
    """Decode up to ``max_frames`` frames, scaled so the longer side is at most ``max_side``."""
    import av

    if path.suffix.lower() in _IMAGE_SUFFIXES:
        from cinepatch.io.video import read_image

        return read_image(path)[None]
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MediaError(path, "contains no video stream")
            stream = container.streams.video[0]
            frames = []
            for frame in container.decode(stream):
                scale = min(1.0, max_side / max(frame.width, frame.height))
                if scale < 1.0:
                    frame = frame.reformat(
                        width=max(2, round(frame.width * scale)), height=max(2, round(frame.height * scale))
                    )
                frames.append(rgb_array(frame))
                if len(frames) >= max_frames:
                    break
    except av.error.FFmpegError as exc:
        raise MediaError(path, f"not a readable video ({exc.__class__.__name__})") from exc
    if not frames:
        raise MediaError(path, "has no frames")
    return np.stack(frames)


def verify(
    path: str | Path,
    *,
    ledger: str | Path | Ledger | None = None,
    trust_root: str | Path | None = None,
    key: bytes = watermark.DEFAULT_KEY,
) -> VerifyReport:
    """Check ``path`` (a video or image) for a C2PA manifest, the watermark and a ledger row."""
    path = Path(path)
    if not path.is_file():
        raise MediaError(path, "no such file")
    digest = sha256_file(path)
    notes: list[str] = []
    try:
        manifest = read_manifest(path, trust_root=trust_root)
    except ProvenanceError as exc:
        manifest = ManifestReport(state="absent", error=str(exc))

    frames = read_frames(path)
    detection = watermark.detect(frames, key=key) if min(frames.shape[1:3]) >= 16 else None
    if detection is None:
        notes.append("frames smaller than 16×16: watermark not checked")

    entry = None
    if ledger is not None:
        db = ledger if isinstance(ledger, Ledger) else Ledger(ledger)
        try:
            if detection is not None and detection.found:
                entry = db.get(detection.payload)
            if entry is None:
                entry = db.find_sha256(digest)
        finally:
            if db is not ledger:
                db.close()
        if entry is not None and entry.sha256 != digest:
            notes.append("the file differs from the one recorded (re-encoded, cut or edited)")

    recorded = (manifest.generation or {}).get("watermark_payload")
    if recorded and detection is not None and detection.found and recorded != f"{detection.payload:08x}":
        notes.append(f"manifest names watermark {recorded}, the frames carry {detection.payload:08x}")
    return VerifyReport(
        path=path, sha256=digest, manifest=manifest, watermark=detection, ledger=entry, notes=tuple(notes)
    )
