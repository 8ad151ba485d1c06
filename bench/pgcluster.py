"""A throwaway PostgreSQL cluster, with nothing from pytest: for the
benchmark's PostgreSQL case, and under the tests' fixture (tests/postgres.py).

``initdb`` in a temporary folder and ``pg_ctl start`` on a free port of
127.0.0.1, with its unix socket in that folder; stopped and removed on exit.
initdb refuses to run as root, so as root the cluster runs as Debian's
``postgres`` user, or ``nobody``. The superuser ``digest`` logs in without a
password over loopback only.

By default it keeps PostgreSQL's own durability settings (fsync,
synchronous_commit): the benchmark's figure is meant to be what a user's
server would give. The tests pass ``settings`` that trade that for speed.
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
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
SUPERUSER = "digest"
HBA = f"local all all trust\nhost all all {HOST}/32 trust\n"
SETTINGS = """
listen_addresses = '{host}'
port = {port}
unix_socket_directories = '{root}'
max_connections = 50
"""


class ClusterError(Exception):
    """The cluster could not be made or started; the message says which step."""


def binaries() -> Path | None:
    """The folder of initdb and pg_ctl: on PATH, or Debian's newest versioned folder."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
                      key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit()
                      else 0)
    return versions[-1].parent if versions else None


@dataclass(frozen=True, slots=True)
class Account:
    """Who the server runs as: None for whoever we are."""

    user: int | None = None
    group: int | None = None


def owner() -> Account:
    """An unprivileged account to run the server as when we are root."""
    if os.getuid() != 0:
        return Account()
    for name in ("postgres", "nobody"):
        try:
            account = pwd.getpwnam(name)
        except KeyError:
            continue
        return Account(account.pw_uid, account.pw_gid)
    raise ClusterError("no unprivileged user (postgres, nobody) to run PostgreSQL as")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True, slots=True)
class Cluster:
    """A running cluster: where to reach it as its superuser."""

    host: str
    port: int

    def url(self, database: str = "postgres", user: str = SUPERUSER) -> str:
        return f"postgresql://{user}@{self.host}:{self.port}/{database}"

    def execute(self, sql: str, database: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True) as db:
            db.execute(sql.encode())

    @contextmanager
    def database(self) -> Iterator[str]:
        """A fresh, empty database, as a --state URL; dropped afterwards."""
        name = f"bench{uuid.uuid4().hex[:12]}"
        self.execute(f"CREATE DATABASE {name} TEMPLATE template0")
        try:
            yield self.url(name)
        finally:
            self.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _run(command: list[str], as_user: Account) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False,
                          user=as_user.user, group=as_user.group)
    if done.returncode != 0:
        raise ClusterError(f"{' '.join(command)} failed: {done.stdout}{done.stderr}")


@contextmanager
def throwaway_cluster(programs: Path, *, hba: str = HBA, settings: str = "") -> Iterator[Cluster]:
    """A cluster made with ``programs``' initdb, running until the block ends;
    ``hba`` is its whole pg_hba.conf, ``settings`` lines added to its config."""
    as_user = owner()
    root = Path(tempfile.mkdtemp(prefix="digest-pg-"))
    if as_user.user is not None and as_user.group is not None:
        os.chown(root, as_user.user, as_user.group)
    data, port = root / "data", free_port()
    try:
        _run([str(programs / "initdb"), "-D", str(data), "-U", SUPERUSER, "-A", "trust",
              "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"], as_user)
        (data / "pg_hba.conf").write_text(hba)
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(SETTINGS.format(host=HOST, port=port, root=root) + settings)
        _run([str(programs / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w",
              "-t", "30", "start"], as_user)
        yield Cluster(HOST, port)
    finally:
        subprocess.run([str(programs / "pg_ctl"), "-D", str(data), "-m", "fast", "-w",
                        "stop"], capture_output=True, check=False, user=as_user.user,
                       group=as_user.group)
        shutil.rmtree(root, ignore_errors=True)
