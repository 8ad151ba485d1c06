"""A throwaway PostgreSQL cluster for the PostgreSQL state's tests, registered for every
test by `pytest_plugins` in tests/conftest.py.

One cluster per session, made and removed by bench/pgcluster.py (which the benchmark
shares): `initdb` in a temporary folder and `pg_ctl start` on a free port of 127.0.0.1, as
Debian's `postgres` user or `nobody` when we are root, here without fsync. Each test's
`postgres_url` is a fresh database on it, dropped after the test. The superuser `digest`
logs in without a password; the role `withpw` (see `PG_PASSWORD`) must give one
(scram-sha-256), for the password tests.

Without PostgreSQL's programs the tests skip, unless CI is set: there `.ci/run` installed
them, so their absence is a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from bench.pgcluster import Cluster, ClusterError, binaries, throwaway_cluster

PG_PASSWORD_ROLE = "withpw"
PG_PASSWORD = "correct horse battery staple"
HBA = f"""\
local all all trust
host all {PG_PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256
host all all 127.0.0.1/32 trust
"""
# A throwaway cluster need not survive a power cut: no fsync makes CREATE DATABASE fast.
FAST = """
fsync = off
synchronous_commit = off
full_page_writes = off
"""


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """One cluster for the session (see the module docstring)."""
    programs = binaries()
    if programs is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed; .ci/run installs postgresql")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    try:
        with throwaway_cluster(programs, hba=HBA, settings=FAST) as cluster:
            cluster.execute(f"CREATE ROLE {PG_PASSWORD_ROLE} LOGIN PASSWORD '{PG_PASSWORD}'")
            yield cluster
    except ClusterError as exc:
        pytest.fail(str(exc))


@pytest.fixture
def postgres_url(pg_cluster: Cluster) -> Iterator[str]:
    """A fresh, empty database on the session's cluster, as a --state URL."""
    name = f"t{uuid.uuid4().hex[:16]}"
    pg_cluster.execute(f"CREATE DATABASE {name} TEMPLATE template0")
    pg_cluster.execute(f"GRANT ALL ON DATABASE {name} TO {PG_PASSWORD_ROLE}")
    pg_cluster.execute(f"GRANT ALL ON SCHEMA public TO {PG_PASSWORD_ROLE}", name)
    try:
        yield pg_cluster.url(name)
    finally:
        pg_cluster.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
