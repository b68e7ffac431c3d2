"""Finishing an output: the one function every video and image goes through before it exists.

::

    frames ─► visible mark (unless turned off) ─► invisible watermark (payload)
           ─► write to a hidden temporary file beside ``out``
           ─► C2PA sign (MP4/MOV) into a second temporary file ─► rename onto ``out``
           ─► ledger row (payload → prompt, model, parameters, time, sha256, sources)

``out`` appears only once every step has succeeded; on any failure the temporary files are
removed, nothing is left at ``out`` (an earlier file there is kept as it was), and no ledger row
is written. GIF and PNG-folder outputs are marked and recorded but not C2PA-signed.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cinepatch.errors import InvalidParameter, ProvenanceError
from cinepatch.provenance import c2pa_sign, watermark
from cinepatch.provenance.ledger import Ledger, sha256_file
from cinepatch.provenance.visible import apply_visible_mark

__all__ = ["Settings", "Record", "Finished", "new_payload", "finish"]

_SIGNED_SUFFIXES = {".mp4", ".mov", ".m4v"}


@dataclass(frozen=True)
class Settings:
    """How an installation finishes outputs.

    ``keys_dir``: where the local root CA and signer live (made on first use). ``cert`` / ``key``:
    the user's own chain and private key instead (both or neither). ``ledger``: the SQLite file,
    or ``None`` to keep no ledger (tests, one-off use).
    """

    keys_dir: Path | None
    visible_mark: bool = True
    cert: Path | None = None
    key: Path | None = None
    alg: str = "es256"
    ledger: Path | None = None
    watermark_key: bytes = watermark.DEFAULT_KEY
    target_psnr: float = watermark.DEFAULT_PSNR
    crf: int = 18
    mark_text: str = "cinepatch"
    mark_corner: str = "bottom-right"

    def signing_keys(self) -> c2pa_sign.SigningKeys:
        if (self.cert is None) != (self.key is None):
            raise InvalidParameter("c2pa_cert/c2pa_key", (self.cert, self.key), "both paths or neither")
        if self.cert is not None and self.key is not None:
            return c2pa_sign.SigningKeys(chain=Path(self.cert), key=Path(self.key), alg=self.alg)
        if self.keys_dir is None:
            raise InvalidParameter("keys_dir", None, "a folder for the signing keys, or cert and key")
        return c2pa_sign.ensure_keys(self.keys_dir)


@dataclass(frozen=True)
class Record:
    """What made the output: goes to the ledger (all of it) and the C2PA manifest (no prompt)."""

    prompt: str
    model: str
    expanded_prompt: str = ""
    software: str = ""
    action: str = "c2pa.created"  # or "c2pa.edited"
    edit: str | None = None
    sources: tuple[str, ...] = ()
    parameters: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Finished:
    path: Path
    payload: int
    sha256: str
    psnr: float  # of the invisible mark alone, dB
    signed: bool

    @property
    def payload_hex(self) -> str:
        return f"{self.payload:08x}"


def new_payload(ledger: Ledger | None = None) -> bytes:
    """A fresh 32-bit watermark payload (4 bytes), unused in ``ledger`` when one is given."""
    for _ in range(64):
        payload = secrets.token_bytes(4)
        if ledger is None or ledger.get(int.from_bytes(payload, "big")) is None:
            return payload
    raise ProvenanceError("could not find an unused watermark payload")


def _payload_int(payload: int | bytes) -> int:
    if isinstance(payload, (bytes, bytearray)):
        if len(payload) != 4:
            raise InvalidParameter("payload", payload.hex(), "4 bytes (32 bits)")
        return int.from_bytes(payload, "big")
    if isinstance(payload, int) and 0 <= payload < 2**32:
        return payload
    raise InvalidParameter("payload", payload, "4 bytes or an integer in 0..2^32-1")


def finish(
    frames: np.ndarray,
    *,
    fps: float,
    out: str | Path,
    payload: int | bytes,
    settings: Settings,
    record: Record,
) -> Finished:
    """Mark, write, sign and record ``frames`` as ``out`` (.mp4/.mov, .gif, or a PNG folder)."""
    from cinepatch.io.video import write_video

    out = Path(out)
    payload_int = _payload_int(payload)
    suffix = out.suffix.lower()
    sign = suffix in _SIGNED_SUFFIXES
    keys = settings.signing_keys() if sign else None  # fail before any work if keys are bad

    ledger = Ledger(settings.ledger) if settings.ledger is not None else None
    try:
        if ledger is not None and ledger.get(payload_int) is not None:
            raise ProvenanceError(f"payload {payload_int:08x} is already in the ledger")

        # 1–2. Visible mark first, then the invisible watermark over everything.
        frames = np.asarray(frames)
        marked = frames
        if settings.visible_mark:
            marked = apply_visible_mark(marked, text=settings.mark_text, corner=settings.mark_corner)
        watermarked = watermark.embed(
            marked, payload_int, key=settings.watermark_key, target_psnr=settings.target_psnr
        )
        quality = watermark.psnr(watermarked, marked)

        # 3–4. Write to a hidden temporary beside `out`, sign into place (atomic rename).
        out.parent.mkdir(parents=True, exist_ok=True)
        workdir = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        try:
            staged = workdir / (out.name if suffix else "frames")
            write_video(staged, watermarked, fps=fps, crf=settings.crf)
            if sign:
                info = c2pa_sign.ManifestInfo(
                    model=record.model,
                    title=out.name,
                    watermark_payload=payload_int,
                    sources=tuple(Path(s) for s in record.sources),
                    edit=(record.edit or "edit") if record.action == "c2pa.edited" or record.edit else "",
                )
                c2pa_sign.sign_file(staged, info, keys, dest=out)
            elif suffix:
                os.replace(staged, out)
            else:
                if out.exists():
                    shutil.rmtree(out)
                os.replace(staged, out)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

        _readable(out)

        # 5. Ledger row for the final bytes; if it cannot be written the output goes too.
        digest = sha256_file(out) if out.is_file() else _folder_digest(out)
        if ledger is not None:
            try:
                ledger.add(
                    payload_int,
                    prompt=record.prompt,
                    model=record.model,
                    parameters={
                        **record.parameters,
                        "expanded_prompt": record.expanded_prompt,
                        "software": record.software,
                        "action": record.action,
                        "edit": record.edit,
                        "fps": fps,
                        "visible_mark": settings.visible_mark,
                    },
                    output=out.resolve(),
                    sha256=digest,
                    sources=list(record.sources),
                )
            except BaseException:
                if out.is_dir():
                    shutil.rmtree(out, ignore_errors=True)
                else:
                    out.unlink(missing_ok=True)
                raise
    finally:
        if ledger is not None:
            ledger.close()
    return Finished(path=out, payload=payload_int, sha256=digest, psnr=quality, signed=sign)




def _readable(path: Path) -> None:
    """Temporary files are created 0600; give the output the usual umask-based mode."""
    umask = os.umask(0)
    os.umask(umask)
    for item in [path, *path.iterdir()] if path.is_dir() else [path]:
        os.chmod(item, (0o777 if item.is_dir() else 0o666) & ~umask)


def _folder_digest(folder: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        digest.update(path.name.encode())
        digest.update(sha256_file(path).encode())
    return digest.hexdigest()
