"""A smoke run of the benchmark at a tiny size, so it keeps working. It
asserts that every case ran and reported, never how fast anything was."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO


def test_bench_runs_every_case_at_a_tiny_size(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    cases = "build,memory,send,journal,dkim,startup,serve"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--repeat", "1", "--messages", "200",
         "--recipients", "300", "--send", "60", "--concurrency", "4", "--oneclick", "20",
         "--cases", cases,
         "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stderr
    rows = {row["case"].split(" (")[0]: row for row in json.loads(out.read_text())["rows"]}
    expected = {"build", "memory", "stream", "digest --help", "serve one-click"}
    if shutil.which("smtp-sink") or Path("/usr/sbin/smtp-sink").exists():
        expected |= {"smtp-source", "digest send", "send, no journal",
                     "send, DKIM RSA-2048"}
    else:
        assert "Skipping the send cases" in result.stderr
    assert expected <= set(rows)
    assert all(row["median"] > 0 for row in rows.values())
    assert "case" in result.stdout.splitlines()[0]
