"""The generation ledger: one SQLite row per output this installation made.

The invisible watermark carries only a 32-bit payload; the ledger maps it back to what made the
video: prompt, model, parameters (JSON), time, the output's SHA-256 and its sources. SQLite in
WAL mode, so a service's workers and a CLI can read while one writes.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from cinepatch.errors import InvalidParameter, ProvenanceError

__all__ = ["LedgerEntry", "Ledger", "sha256_file"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS generations (
    payload     INTEGER PRIMARY KEY,   -- the watermark payload, 0 .. 2^32-1
    created     REAL NOT NULL,         -- Unix time
    prompt      TEXT NOT NULL,
    model       TEXT NOT NULL,
    parameters  TEXT NOT NULL,         -- JSON object
    output      TEXT,                  -- path written
    sha256      TEXT,                  -- of the final (signed) file
    sources     TEXT NOT NULL          -- JSON list of {path, sha256}
);
CREATE INDEX IF NOT EXISTS generations_sha256 ON generations (sha256);
"""


@dataclass(frozen=True)
class LedgerEntry:
    payload: int
    created: float
    prompt: str
    model: str
    parameters: dict
    output: str | None
    sha256: str | None
    sources: list[dict]

    def to_dict(self) -> dict:
        return {
            "payload": self.payload,
            "payload_hex": f"{self.payload:08x}",
            "created": self.created,
            "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.created)),
            "prompt": self.prompt,
            "model": self.model,
            "parameters": self.parameters,
            "output": self.output,
            "sha256": self.sha256,
            "sources": self.sources,
        }


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Ledger:
    """``Ledger(path)``: open (creating if needed) the ledger database at ``path``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise ProvenanceError(f"{self.path}: cannot open the ledger ({exc})") from exc

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def new_payload(self) -> int:
        """A random 32-bit payload not yet in the ledger."""
        for _ in range(64):
            payload = secrets.randbits(32)
            if self.get(payload) is None:
                return payload
        raise ProvenanceError(f"{self.path}: could not find a free watermark payload")

    def add(
        self,
        payload: int,
        *,
        prompt: str,
        model: str,
        parameters: dict,
        output: str | Path | None,
        sha256: str | None,
        sources: list[str | Path] = (),
        created: float | None = None,
    ) -> LedgerEntry:
        """Record one generation; the payload must be new."""
        if not 0 <= payload < 2**32:
            raise InvalidParameter("payload", payload, "0 .. 2^32-1")
        source_rows = [
            {"path": str(s), "sha256": sha256_file(s) if Path(s).is_file() else None} for s in sources
        ]
        entry = LedgerEntry(
            payload=payload,
            created=time.time() if created is None else created,
            prompt=prompt,
            model=model,
            parameters=dict(parameters),
            output=None if output is None else str(output),
            sha256=sha256,
            sources=source_rows,
        )
        try:
            self._db.execute(
                "INSERT INTO generations VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    entry.payload,
                    entry.created,
                    entry.prompt,
                    entry.model,
                    json.dumps(entry.parameters, sort_keys=True, default=str),
                    entry.output,
                    entry.sha256,
                    json.dumps(entry.sources),
                ),
            )
        except sqlite3.IntegrityError as exc:
            raise ProvenanceError(f"{self.path}: payload {payload:08x} is already recorded") from exc
        return entry

    def get(self, payload: int) -> LedgerEntry | None:
        row = self._db.execute("SELECT * FROM generations WHERE payload = ?", (payload,)).fetchone()
        return None if row is None else _entry(row)

    def find_sha256(self, sha256: str) -> LedgerEntry | None:
        row = self._db.execute("SELECT * FROM generations WHERE sha256 = ?", (sha256,)).fetchone()
        return None if row is None else _entry(row)

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM generations").fetchone()[0])


def _entry(row: tuple) -> LedgerEntry:
    payload, created, prompt, model, parameters, output, sha, sources = row
    return LedgerEntry(
        payload=int(payload),
        created=float(created),
        prompt=prompt,
        model=model,
        parameters=json.loads(parameters),
        output=output,
        sha256=sha,
        sources=json.loads(sources),
    )
