"""Provenance on every output: visible mark, invisible watermark, C2PA credentials, ledger.

::

    finish(frames, fps=, out=, payload=, settings=, record=)    the one way an output is made:
        visible mark → invisible watermark → atomic write → C2PA sign (MP4) → ledger row
    verify(path, ledger=, trust_root=) -> VerifyReport          reads all three back

Modules: ``watermark`` (embed/detect), ``visible`` (corner label), ``c2pa_sign`` (keys, sign,
read), ``ledger`` (SQLite), ``finish``, ``verify``.
"""

from cinepatch.provenance.c2pa_sign import ManifestInfo, ManifestReport, SigningKeys, ensure_keys
from cinepatch.provenance.finish import Finished, Record, Settings, finish, new_payload
from cinepatch.provenance.ledger import Ledger, LedgerEntry
from cinepatch.provenance.verify import VerifyReport, verify
from cinepatch.provenance.watermark import Detection, detect, embed

__all__ = [
    "Detection",
    "Finished",
    "Ledger",
    "LedgerEntry",
    "ManifestInfo",
    "ManifestReport",
    "Record",
    "Settings",
    "SigningKeys",
    "VerifyReport",
    "detect",
    "embed",
    "ensure_keys",
    "finish",
    "new_payload",
    "verify",
]
