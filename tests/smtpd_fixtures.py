"""pytest fixtures for the real SMTP server of tests/smtpd.py, registered for every test by
`pytest_plugins = ["tests.smtpd_fixtures"]` in tests/conftest.py.

A test module must not import the fixture names themselves: ruff reports the test
parameters as F811 redefinitions.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests.smtpd import FaultyServer, server_tls_context, write_ca_pem


def pytest_configure(config: pytest.Config) -> None:
    # aiosmtpd warns when AUTH is required without TLS; a FaultyServer with `auth` and no
    # `tls_context` does exactly that on purpose, to check that the client declines to AUTH.
    config.addinivalue_line(
        "filterwarnings", "ignore:Requiring AUTH while not requiring TLS:UserWarning"
    )


@pytest.fixture
def smtp_server() -> Iterator[FaultyServer]:
    """A started plaintext FaultyServer, stopped after the test."""
    with FaultyServer() as server:
        yield server


@pytest.fixture(scope="session")
def tls_ca() -> trustme.CA:
    """A throwaway certificate authority for the whole test session."""
    return trustme.CA()


@pytest.fixture(scope="session")
def tls_ca_file(tls_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `tls_ca` certificate as a PEM file, e.g. for ssl.create_default_context(cafile=)."""
    return write_ca_pem(tls_ca, tmp_path_factory.mktemp("smtp-tls") / "ca.pem")


@pytest.fixture
def tls_smtp_server(tls_ca: trustme.CA) -> Iterator[FaultyServer]:
    """A started FaultyServer offering STARTTLS with a `tls_ca`-issued certificate.

    STARTTLS is offered, not required. For AUTH or require_starttls build your own:
    ``FaultyServer(tls_context=server_tls_context(tls_ca), auth=("user", "pw"))``.
    """
    with FaultyServer(tls_context=server_tls_context(tls_ca)) as server:
        yield server


@pytest.fixture
def smtps_server(tls_ca: trustme.CA) -> Iterator[FaultyServer]:
    """A started FaultyServer speaking implicit TLS (SMTPS) with a `tls_ca`-issued certificate."""
    with FaultyServer(tls_context=server_tls_context(tls_ca), implicit_tls=True) as server:
        yield server
