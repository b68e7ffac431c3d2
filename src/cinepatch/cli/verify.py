"""`cinepatch verify FILE [--json]`: C2PA manifest, invisible watermark and ledger entry.

Exit code 0 when the file carries cinepatch provenance (a valid or trusted manifest, or the
watermark) and no manifest in it is invalid; 1 otherwise; 2 when the file cannot be read.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "verify",
        help="check a video's C2PA credentials, invisible watermark and ledger entry",
        description="Read a file's C2PA manifest (valid / trusted / invalid, actions, "
        "ingredients), look for cinepatch's invisible watermark (works on re-encoded copies "
        "whose manifest was stripped), and find the ledger entry if this installation made it.",
    )
    parser.add_argument("file", type=Path, help="video or image to check")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--config-dir", type=Path, help="where the signing keys live (default ~/.config/cinepatch)"
    )
    parser.add_argument(
        "--data-dir", type=Path, help="where the ledger lives (default ~/.local/share/cinepatch)"
    )
    parser.add_argument(
        "--trust-root", type=Path,
        help="PEM of trusted root certificates (default: this installation's local root, if any)",
    )
    parser.add_argument("--ledger", type=Path, help="ledger file (default DATA_DIR/ledger.sqlite)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cinepatch.config import default_dirs
    from cinepatch.provenance import verify

    config_dir, data_dir = default_dirs()
    config_dir = args.config_dir or config_dir
    data_dir = args.data_dir or data_dir
    trust_root = args.trust_root
    if trust_root is None and (config_dir / "c2pa" / "root.pem").is_file():
        trust_root = config_dir / "c2pa" / "root.pem"
    ledger = args.ledger
    if ledger is None and (data_dir / "ledger.sqlite").is_file():
        ledger = data_dir / "ledger.sqlite"

    report = verify(args.file, ledger=ledger, trust_root=trust_root)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        print(report.text())
    ok = report.made_by_cinepatch and report.manifest.state != "invalid"
    return 0 if ok else 1
