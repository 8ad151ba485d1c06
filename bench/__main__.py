"""``python -m bench``: digest's performance, measured against this machine's
own ceiling in the same run. Installs nothing; starts and stops its own servers.

Cases (each run --repeat times; the table shows median, min and max):

* build     personalised messages per second for a ~40 KB digest, after the
            one-time render and inline. Target: >= 100,000/s.
* memory    a whole send of --recipients subscribers to a null transport;
            peak RSS. Target: < 200 MB for 1,000,000.
* send      ``digest send`` over SMTP to Postfix's smtp-sink, journal on, as a
            share of smtp-source's rate with the same size and concurrency.
            Target: >= 40%.
* journal   the same send with the journal in memory only; the overhead of
            the real journal. Target: <= 10%.
* dkim      the send case with every message DKIM-signed (RSA-2048), as a
            share of smtp-source's rate. Target: >= 30%.
* scale     a 16 KB digest at --scale-concurrency connections (16): smtp-source,
            then ``digest send`` with one worker and with --workers (2), over a
            SQLite state and over PostgreSQL (a throwaway cluster of its own).
            Target for the workers: >= 0.70 of smtp-source.
* startup   ``digest --help``. Target: <= 0.3 s.
* serve     one-click unsubscribe POSTs per second to ``digest serve`` on
            loopback, from a client in another process, each for another
            recipient of a real journal. Target: >= 500/s with 0 errors.

smtp-sink and smtp-source come from Debian's postfix package
(``apt-get install postfix``); without them the send cases are skipped.
PostgreSQL's initdb and pg_ctl come from ``apt-get install postgresql``;
without them the PostgreSQL case is skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from bench import pgcluster
from bench.corpus import write_articles, write_list

SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
AS_OF = "2026-11-28"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def smtp_sink() -> Iterator[int]:
    """Postfix's smtp-sink on a free loopback port: accepts and discards mail."""
    port = free_port()
    args = [SINK, "-u", "nobody", f"127.0.0.1:{port}", "1024"] if os.geteuid() == 0 \
        else [SINK, f"127.0.0.1:{port}", "1024"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.01)
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)


SITE_URL = "https://news.example.org"
BENCH_KEY = "bench-only-key-" + "0123456789abcdef" * 2  # not a secret: links to nowhere


def run_json(*args: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-m", "bench.workers", *args], check=True,
                         capture_output=True, text=True).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def digest_send(work: Path, port: int, concurrency: int, *, journal: bool = True,
                extra: tuple[str, ...] = (), articles: str = "articles",
                state: str | None = None) -> float:
    """Messages per second of one ``digest send`` (its own measure of the run), with
    a fresh state folder unless ``state`` names a database."""
    run = work / f"run-{time.monotonic_ns()}"
    (run / "state").mkdir(parents=True)
    args = [sys.executable, "-m", "digest", "send", "--articles", str(work / articles),
            "--since", "14d", "--as-of", AS_OF, "--list", str(work / "list.csv"),
            "--transport", f"smtp://127.0.0.1:{port}", "--concurrency", str(concurrency),
            "--state", state or str(run / "state"), "--report", str(run / "report.json"),
            "--quiet", "--site-url", SITE_URL]
    if not journal:
        args.append("--no-journal")
    args += extra
    # Signed links, as a real send has them.
    subprocess.run(args, check=True, env={**os.environ, "DIGEST_SECRET": BENCH_KEY})
    report = json.loads((run / "report.json").read_text())
    shutil.rmtree(run)
    return float(report["sent"]) / float(report["send_s"])


def workers_flags(count: int) -> tuple[str, ...] | None:
    """``--workers COUNT`` if this digest has the flag; without it, only one worker
    can be asked for (no flag), and more cannot (None)."""
    usage = subprocess.run([sys.executable, "-m", "digest", "send", "--help"], check=True,
                           capture_output=True, text=True).stdout
    if "--workers" in usage:
        return ("--workers", str(count))
    return () if count == 1 else None


def smtp_source(port: int, count: int, size: int, concurrency: int) -> float:
    started = time.perf_counter()
    subprocess.run([SOURCE, "-s", str(concurrency), "-l", str(size), "-m", str(count),
                    "-f", "bench@example.org", "-t", "reader@example.org",
                    f"127.0.0.1:{port}"], check=True)
    return count / (time.perf_counter() - started)


def startup() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "digest", "--help"], check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


@contextmanager
def digest_serve(work: Path, state: Path) -> Iterator[int]:
    """``digest serve`` in a process of its own, on a free loopback port."""
    process = subprocess.Popen(
        [sys.executable, "-m", "digest", "serve", "--listen", "127.0.0.1:0", "--state",
         str(state), "--articles", str(work / "articles")],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "DIGEST_SECRET": BENCH_KEY})
    try:
        assert process.stdout is not None
        found = re.search(r"http://127\.0\.0\.1:(\d+)/", process.stdout.readline())
        if found is None:
            raise SystemExit("digest serve did not start")
        yield int(found[1])
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)


def serve_case(table: Table, work: Path, options: argparse.Namespace) -> None:
    """A journal of recipients from a send, then their one-click POSTs: each
    repeat to recipients of its own, so every POST suppresses someone."""
    count = options.oneclick
    write_list(work / "readers.csv", count * options.repeat)
    paths = work / "links.txt"
    run_json("links", str(work / "articles"), str(work / "readers.csv"),
             str(work / "serve-state"), str(paths), BENCH_KEY)
    with digest_serve(work, work / "serve-state") as port:
        samples = [run_json("oneclick", str(port), str(paths), str(n * count), str(count), "4")
                   for n in range(options.repeat)]
    rates, errors = [s["per_s"] for s in samples], sum(s["errors"] for s in samples)
    if errors:
        print(f"serve one-click: {errors:.0f} requests did not get a 200", file=sys.stderr)
    table.add("serve one-click", "requests/s", rates, target=">= 500/s, 0 errors",
              passed=statistics.median(rates) >= 500 and errors == 0)


class Table:
    def __init__(self) -> None:
        self.rows: list[dict[str, object]] = []

    def add(self, case: str, unit: str, samples: list[float], *, target: str,
            ratio: float | None = None, passed: bool | None = None) -> None:
        self.rows.append({
            "case": case, "unit": unit, "median": statistics.median(samples),
            "min": min(samples), "max": max(samples), "runs": len(samples),
            "ratio": ratio, "target": target, "passed": passed,
        })

    def print(self) -> None:
        print(f"{'case':<30}{'unit':<14}{'median':>12}{'min':>12}{'max':>12}{'ratio':>9}  "
              "target")
        for r in self.rows:
            ratio = "" if r["ratio"] is None else f"{r['ratio']:.2f}"
            mark = {True: "ok", False: "MISSED", None: ""}[r["passed"]]  # type: ignore[index]
            print(f"{r['case']:<30}{r['unit']:<14}{r['median']:>12,.1f}{r['min']:>12,.1f}"
                  f"{r['max']:>12,.1f}{ratio:>9}  {r['target']} {mark}")


def repeat(times: int, measure: Callable[[], float]) -> list[float]:
    return [measure() for _ in range(times)]


def dkim_key(work: Path) -> tuple[str, ...]:
    """A fresh RSA-2048 key from ``digest dkim keygen``, as send flags."""
    key = work / f"dkim-{time.monotonic_ns()}.pem"
    subprocess.run([sys.executable, "-m", "digest", "dkim", "keygen", "--selector", "bench",
                    "--domain", "example.org", "--out", str(key)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return ("--dkim-key", str(key), "--dkim-selector", "bench")


def postfix_found() -> bool:
    if Path(SINK).exists() and Path(SOURCE).exists():
        return True
    print("smtp-sink/smtp-source not found: apt-get install postfix. "
          "Skipping the send cases.", file=sys.stderr)
    return False


def send_cases(table: Table, work: Path, options: argparse.Namespace, size: int, *,
               with_journal_case: bool, with_dkim_case: bool = False) -> None:
    """smtp-source's ceiling, then ``digest send`` with (and without) the journal."""
    if not postfix_found():
        return
    write_list(work / "list.csv", options.send)
    # These cases measure one process; --workers would otherwise default to the cores.
    one = workers_flags(1) or ()
    with smtp_sink() as port:
        source = repeat(options.repeat, lambda: smtp_source(
            port, options.send, size, options.concurrency))
        ours = repeat(options.repeat, lambda: digest_send(
            work, port, options.concurrency, journal=True, extra=one))
        table.add("smtp-source", "messages/s", source, target="(ceiling)")
        share = statistics.median(ours) / statistics.median(source)
        table.add("digest send", "messages/s", ours, ratio=share,
                  target=">= 0.40 of smtp-source", passed=share >= 0.40)
        if with_journal_case:
            bare = repeat(options.repeat, lambda: digest_send(
                work, port, options.concurrency, journal=False, extra=one))
            overhead = 1 - statistics.median(ours) / statistics.median(bare)
            table.add("send, no journal", "messages/s", bare, ratio=overhead,
                      target="journal overhead <= 0.10", passed=overhead <= 0.10)
        if with_dkim_case:
            flags = dkim_key(work)
            signed = repeat(options.repeat, lambda: digest_send(
                work, port, options.concurrency, journal=True, extra=flags + one))
            share = statistics.median(signed) / statistics.median(source)
            table.add("send, DKIM RSA-2048", "messages/s", signed, ratio=share,
                      target=">= 0.30 of smtp-source", passed=share >= 0.30)


SCALE_ARTICLES = "articles-16k"


@contextmanager
def postgres_cluster() -> Iterator[pgcluster.Cluster | None]:
    """A throwaway cluster for the PostgreSQL case; None, said so, without PostgreSQL."""
    programs = pgcluster.binaries()
    if programs is None:
        print("PostgreSQL not found: apt-get install postgresql. "
              "Skipping the PostgreSQL case.", file=sys.stderr)
        yield None
        return
    with pgcluster.throwaway_cluster(programs) as cluster:
        yield cluster


def scale_runs(workers: int, cluster: pgcluster.Cluster | None
               ) -> list[tuple[str, tuple[str, ...], bool]]:
    """The scale case's sends: (label, flags, on PostgreSQL), one worker first."""
    one, many = workers_flags(1) or (), workers_flags(workers)
    runs = [("1 worker, SQLite", one, False)]
    if many is None:
        print(f"digest send has no --workers: skipping the {workers}-worker cases.",
              file=sys.stderr)
    else:
        runs.append((f"{workers} workers, SQLite", many, False))
    if cluster is not None:
        runs.append(("1 worker, PostgreSQL", one, True))
        if many is not None:
            runs.append((f"{workers} workers, PostgreSQL", many, True))
    return runs


def scale_cases(table: Table, work: Path, options: argparse.Namespace) -> dict[str, int]:
    """A 16 KB digest at --scale-concurrency connections: smtp-source, then
    ``digest send`` with one worker and with --workers, over SQLite and over
    PostgreSQL, all against one smtp-sink in the same run."""
    if not postfix_found():
        return {}
    articles = write_articles(work / SCALE_ARTICLES, count=4, summary_sentences=3)
    size = int(run_json("build", str(articles), "10")["message_bytes"])
    write_list(work / "list.csv", options.send)
    connections = options.scale_concurrency
    with smtp_sink() as port, postgres_cluster() as cluster:
        source = repeat(options.repeat, lambda: smtp_source(
            port, options.send, size, connections))
        table.add("16 KB: smtp-source", "messages/s", source, target="(ceiling)")
        for label, flags, on_postgres in scale_runs(options.workers, cluster):
            def once(flags: tuple[str, ...] = flags, on_postgres: bool = on_postgres) -> float:
                if not on_postgres or cluster is None:
                    return digest_send(work, port, connections, extra=flags,
                                       articles=SCALE_ARTICLES)
                with cluster.database() as url:  # a fresh database for every run
                    return digest_send(work, port, connections, extra=flags,
                                       articles=SCALE_ARTICLES, state=url)
            rates = repeat(options.repeat, once)
            share = statistics.median(rates) / statistics.median(source)
            several = not label.startswith("1 ")
            table.add(f"16 KB: {label}", "messages/s", rates, ratio=share,
                      target=">= 0.70 of smtp-source" if several else "(information)",
                      passed=share >= 0.70 if several else None)
    return {"scale_message_bytes": size}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--messages", type=int, default=200_000,
                        help="personalised messages in the build case")
    parser.add_argument("--recipients", type=int, default=1_000_000,
                        help="subscribers in the memory case")
    parser.add_argument("--send", type=int, default=20_000, help="messages in the send cases")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--scale-concurrency", type=int, default=16,
                        help="connections in the scale cases")
    parser.add_argument("--workers", type=int, default=2,
                        help="digest send --workers in the scale cases")
    parser.add_argument("--oneclick", type=int, default=3000,
                        help="one-click POSTs per repeat in the serve case")
    parser.add_argument("--cases",
                        default="build,memory,send,journal,dkim,scale,startup,serve")
    parser.add_argument("--json", type=Path, default=Path("bench/results.json"))
    options = parser.parse_args()
    cases = set(options.cases.split(","))
    table = Table()
    sizes: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="digest-bench-") as scratch:
        work = Path(scratch)
        write_articles(work / "articles")
        if "build" in cases:
            samples = [run_json("build", str(work / "articles"), str(options.messages))
                       for _ in range(options.repeat)]
            rates = [s["per_s"] for s in samples]
            table.add("build", "messages/s", rates, target=">= 100,000/s",
                      passed=statistics.median(rates) >= 100_000)
            size = int(samples[0]["message_bytes"])
        else:
            size = 40_000
        if "memory" in cases:
            write_list(work / "million.csv", options.recipients)
            result = run_json("stream", str(work / "articles"), str(work / "million.csv"),
                              str(work / "memory-state"))
            table.add(f"memory ({options.recipients:,})", "peak RSS MB",
                      [result["peak_rss_mb"]], target="< 200 MB",
                      passed=result["peak_rss_mb"] < 200)
            table.add(f"stream ({options.recipients:,})", "recipients/s",
                      [result["sent"] / result["seconds"]], target="(information)")
        if cases & {"send", "journal", "dkim"}:
            send_cases(table, work, options, size, with_journal_case="journal" in cases,
                       with_dkim_case="dkim" in cases)
        if "scale" in cases:
            sizes |= scale_cases(table, work, options)
        if "startup" in cases:
            times = repeat(max(options.repeat, 5), startup)
            table.add("digest --help", "seconds", times, target="<= 0.3 s",
                      passed=statistics.median(times) <= 0.3)
        if "serve" in cases:
            serve_case(table, work, options)
    table.print()
    options.json.parent.mkdir(parents=True, exist_ok=True)
    options.json.write_text(json.dumps({"message_bytes": size, **sizes, "rows": table.rows},
                                       indent=2))
    print(f"\nwrote {options.json}")


if __name__ == "__main__":
    main()
