"""A throwaway PostgreSQL cluster for the PostgreSQL state's tests, registered for every
test by `pytest_plugins` in tests/conftest.py.

One cluster per session: `initdb` in a temporary folder and `pg_ctl start` on a free port
of 127.0.0.1, with its unix socket in that folder, stopped and removed at the end. initdb
refuses to run as root, so as root (as under CI) the cluster runs as Debian's `postgres`
user, or `nobody`, in a folder of its own under the system's temporary folder (pytest's
are private to root). Each test's `postgres_url` is a fresh database on it, dropped after
the test. The superuser `digest` logs in without a password; the role `withpw` (see
`PG_PASSWORD`) must give one (scram-sha-256), for the password tests.

Without PostgreSQL's programs the tests skip, unless CI is set: there `.ci/run` installed
them, so their absence is a failure.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

HOST = "127.0.0.1"
SUPERUSER = "digest"
PG_PASSWORD_ROLE = "withpw"
PG_PASSWORD = "correct horse battery staple"
HBA = f"""\
local all all trust
host all {PG_PASSWORD_ROLE} {HOST}/32 scram-sha-256
host all all {HOST}/32 trust
"""
# A throwaway cluster need not survive a power cut: no fsync makes CREATE DATABASE fast.
SETTINGS = """
listen_addresses = '{host}'
port = {port}
unix_socket_directories = '{root}'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 50
"""


def _binaries() -> Path | None:
    """The folder of initdb and pg_ctl: on PATH, or Debian's versioned folder."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
                      key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit()
                      else 0)
    return versions[-1].parent if versions else None


def _owner() -> dict[str, Any]:
    """subprocess arguments that run the server as an unprivileged user when we are root."""
    if os.getuid() != 0:
        return {}
    for name in ("postgres", "nobody"):
        try:
            account = pwd.getpwnam(name)
        except KeyError:
            continue
        return {"user": account.pw_uid, "group": account.pw_gid}
    pytest.fail("no unprivileged user (postgres, nobody) to run PostgreSQL as")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True, slots=True)
class PgCluster:
    """A running cluster: where to reach it as its superuser."""

    host: str
    port: int

    def url(self, database: str = "postgres", user: str = SUPERUSER) -> str:
        return f"postgresql://{user}@{self.host}:{self.port}/{database}"

    def execute(self, sql: str, database: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True) as db:
            db.execute(sql.encode())


def _run(command: list[str], owner: dict[str, Any]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False, **owner)
    if done.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed: {done.stdout}{done.stderr}")


@pytest.fixture(scope="session")
def pg_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgCluster]:
    """One cluster for the session (see the module docstring)."""
    binaries = _binaries()
    if binaries is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed; .ci/run installs postgresql")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    owner = _owner()
    if owner:
        root = Path(tempfile.mkdtemp(prefix="digest-pg-"))
        os.chown(root, owner["user"], owner["group"])
    else:
        root = tmp_path_factory.mktemp("pg")
    data, port = root / "data", _free_port()
    try:
        _run([str(binaries / "initdb"), "-D", str(data), "-U", SUPERUSER, "-A", "trust",
              "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"], owner)
        (data / "pg_hba.conf").write_text(HBA)
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(SETTINGS.format(host=HOST, port=port, root=root))
        _run([str(binaries / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w",
              "-t", "30", "start"], owner)
        cluster = PgCluster(HOST, port)
        cluster.execute(f"CREATE ROLE {PG_PASSWORD_ROLE} LOGIN PASSWORD '{PG_PASSWORD}'")
        yield cluster
    finally:
        subprocess.run([str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w",
                        "stop"], capture_output=True, check=False, **owner)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(pg_cluster: PgCluster) -> Iterator[str]:
    """A fresh, empty database on the session's cluster, as a --state URL."""
    name = f"t{uuid.uuid4().hex[:16]}"
    pg_cluster.execute(f"CREATE DATABASE {name} TEMPLATE template0")
    pg_cluster.execute(f"GRANT ALL ON DATABASE {name} TO {PG_PASSWORD_ROLE}")
    pg_cluster.execute(f"GRANT ALL ON SCHEMA public TO {PG_PASSWORD_ROLE}", name)
    try:
        yield pg_cluster.url(name)
    finally:
        pg_cluster.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
