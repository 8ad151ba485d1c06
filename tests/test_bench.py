"""A smoke run of the benchmark at a tiny size, so it keeps working. It
asserts that every case ran and reported, never how fast anything was."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from bench.pgcluster import binaries
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


def test_bench_runs_the_scale_cases_at_a_tiny_size(tmp_path: Path) -> None:
    """smtp-source, then one worker and two over SQLite and over PostgreSQL (a
    cluster the bench starts itself), on the 16 KB digest; PostgreSQL's absence is
    a skip of that case only, and outside CI."""
    out = tmp_path / "results.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--repeat", "1", "--send", "40",
         "--scale-concurrency", "2", "--workers", "2", "--cases", "scale", "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stderr
    if not (shutil.which("smtp-sink") or Path("/usr/sbin/smtp-sink").exists()):
        assert "Skipping the send cases" in result.stderr
        return
    results = json.loads(out.read_text())
    rows = {row["case"]: row for row in results["rows"]}
    expected = {"16 KB: smtp-source", "16 KB: 1 worker, SQLite", "16 KB: 2 workers, SQLite"}
    if binaries() is not None or os.environ.get("CI"):
        expected |= {"16 KB: 1 worker, PostgreSQL", "16 KB: 2 workers, PostgreSQL"}
    else:
        assert "Skipping the PostgreSQL case" in result.stderr
    assert set(rows) == expected
    assert all(row["median"] > 0 for row in rows.values())
    assert rows["16 KB: 2 workers, SQLite"]["target"] == ">= 0.70 of smtp-source"
    assert 15_000 <= results["scale_message_bytes"] <= 17_500
