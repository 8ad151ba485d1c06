"""A throwaway Dovecot IMAPS server for the IMAP source's tests, registered for every test by
`pytest_plugins` in tests/conftest.py.

One server per session (`dovecot -F -c CONFIG` in the background) listens with IMAPS on a
free port of 127.0.0.1, with a certificate from the session's `tls_ca`; each test's
`dovecot` is a fresh passwd-file user on it whose mail is a Maildir in the server's temporary
folder, so a test delivers a message by writing a file into ``maildir / "new"``. Without
`dovecot` installed the tests skip, unless CI is set: there `.ci/run` installed it, so its
absence is a failure.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

HOST = "127.0.0.1"
PASSWORD = "correct horse battery staple"
START_TIMEOUT = 10.0

CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = {host}
ssl = required
ssl_cert = <{root}/cert.pem
ssl_key = <{root}/key.pem
auth_mechanisms = plain
# A wrong password is answered at once, not after the default 2 s.
auth_failure_delay = 0
first_valid_uid = 0
default_internal_user = {owner}
default_login_user = {login}
mail_location = maildir:{root}/home/%u/Maildir
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd/%u
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = {port}
    ssl = yes
  }}
  chroot =
}}
service anvil {{
  chroot =
  # No auth penalty: a wrong password must not slow down the next tests' logins.
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""


@dataclass(frozen=True, slots=True)
class Dovecot:
    """A running server: where to reach it, who may log in, and that user's Maildir."""

    host: str
    port: int
    user: str
    password: str
    maildir: Path

    def url(self, folder: str = "INBOX") -> str:
        return f"imaps://{self.user}@{self.host}:{self.port}/{folder}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_until_listening(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"dovecot exited with {process.returncode}: "
                        f"{log.read_text() if log.exists() else ''}")
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"dovecot did not listen on {HOST}:{port} within {START_TIMEOUT} s")


def _private_root(factory: pytest.TempPathFactory) -> Path:
    """Where the server keeps its files. Dovecot refuses uid 0 for mail, so as root (as
    under CI) the mail belongs to the `dovecot` user, who cannot pass through pytest's
    private (0700) temporary folders, whose mode pytest resets at every start; so as root
    the server lives in a folder of its own under the system's temporary folder."""
    if os.getuid() != 0:
        return factory.mktemp("dovecot")
    root = Path(tempfile.mkdtemp(prefix="digest-dovecot-"))
    root.chmod(0o711)  # others may pass through to their home, not list it
    return root


def _mail_owner() -> tuple[int, int]:
    if os.getuid() != 0:
        return os.getuid(), os.getgid()
    account = pwd.getpwnam("dovecot")
    return account.pw_uid, account.pw_gid


@dataclass(frozen=True, slots=True)
class _Server:
    port: int
    root: Path
    owner: tuple[int, int]


@pytest.fixture(scope="session")
def dovecot_server(tls_ca: trustme.CA,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Server]:
    """One Dovecot for the session (starting and stopping one takes a second); each test
    gets its own user and Maildir from `dovecot`."""
    binary = shutil.which("dovecot") or (
        "/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists() else None)
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("dovecot is not installed; .ci/run installs dovecot-imapd")
        pytest.skip("dovecot is not installed (apt-get install dovecot-imapd)")
    root = _private_root(tmp_path_factory)
    for sub in ("run", "state", "home", "passwd"):
        (root / sub).mkdir()
    cert = tls_ca.issue_cert(HOST, "localhost")
    cert.private_key_pem.write_to_path(str(root / "key.pem"))
    (root / "cert.pem").write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    uid, gid = _mail_owner()
    # The processes that read the files run as their owner; the login process may not
    # run as root, so as root it is Debian's dovenull.
    owner = pwd.getpwuid(os.getuid()).pw_name
    port = _free_port()
    config = root / "dovecot.conf"
    config.write_text(CONFIG.format(root=root, host=HOST, port=port, uid=uid, gid=gid,
                                    owner=owner, login=owner if os.getuid() else "dovenull"))
    process = subprocess.Popen([binary, "-F", "-c", str(config)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        _wait_until_listening(process, port, root / "dovecot.log")
        yield _Server(port, root, (uid, gid))
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def dovecot(dovecot_server: _Server) -> Dovecot:
    """A fresh user with an empty Maildir on the session's Dovecot (see the module
    docstring), in a passwd-file of its own: Dovecot may not notice a second change to
    one file within the same second."""
    user = f"bounces{uuid.uuid4().hex[:12]}"
    maildir = dovecot_server.root / "home" / user / "Maildir"
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True)
    for path in (maildir.parent, maildir, *maildir.iterdir()):
        os.chown(path, *dovecot_server.owner)
    (dovecot_server.root / "passwd" / user).write_text(f"{user}:{{PLAIN}}{PASSWORD}\n")
    return Dovecot(HOST, dovecot_server.port, user, PASSWORD, maildir)
