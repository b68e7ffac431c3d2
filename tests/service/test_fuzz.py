"""Schemathesis over the whole OpenAPI document, bodies included, against the real server.

Every operation gets generated requests, valid and invalid (``--mode all``); the run fails on
any 5xx, any status the document does not list, or any reply that does not match its schema.
Bounded to about two minutes; ``CINEPATCH_FUZZ_EXAMPLES`` raises the examples per operation.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness import ARTIFACTS

pytestmark = pytest.mark.fuzz

CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_schema_conformance,response_headers_conformance")


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    from harness import make_server

    # quotas high enough that generated creates keep reaching validation rather than the 429
    server = make_server(tmp_path_factory.mktemp("fuzz"), concurrency_per_key=100_000, daily_quota=1_000_000,
                         generator_options={"step_seconds": 0.0, "steps": 2})
    server.start()
    yield server
    server.stop()


def test_schemathesis_finds_no_server_error_and_no_schema_violation(fuzz_server, capsys):
    st = shutil.which("st", path=str(Path(sys.executable).parent)) or "st"
    key = fuzz_server.new_key("fuzz")
    examples = os.environ.get("CINEPATCH_FUZZ_EXAMPLES", "25")
    ARTIFACTS.mkdir(exist_ok=True)
    run = subprocess.run(
        [st, "run", f"{fuzz_server.url}/openapi.json", "--checks", CHECKS, "--mode", "all",
         "--max-examples", examples, "--max-time", "110", "--workers", "1", "--seed", "23",
         "--header", f"Authorization: Bearer {key}", "--request-timeout", "20",
         "--generation-database", "none", "--no-color"],
        capture_output=True, text=True, timeout=240, cwd=ARTIFACTS,
    )
    output = run.stdout + run.stderr
    (ARTIFACTS / "schemathesis.txt").write_text(output)
    counts = re.compile(r"\d+ (generated|passed|failed|errors?|skipped)|Selected|Tested")
    summary = [line for line in output.splitlines() if counts.search(line)]
    with capsys.disabled():
        print("\nschemathesis:", *summary[-6:], sep="\n  ")
    assert run.returncode == 0, output[-6000:]
    assert re.search(r"\d+ generated", output), output[-3000:]
