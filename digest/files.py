"""Files in and out: read only regular files of a bounded size, without ever
blocking on a pipe or device, and write files whole or not at all."""

from __future__ import annotations

import io
import os
import secrets
import stat
from pathlib import Path

from digest.errors import DigestError

_KINDS = {stat.S_IFIFO: "a named pipe", stat.S_IFSOCK: "a socket",
          stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFDIR: "a folder"}


class NotAFile(ValueError):
    """A path that is not a regular file, or one too big to read; ``str()``
    says which, in words that follow the file's name."""


def open_regular(path: Path) -> io.BufferedReader:
    """``path`` opened for reading, if it is a regular file (symlinks followed).

    A named pipe, socket or device is refused before it is opened, and the
    open itself cannot block (O_NONBLOCK), so no such file can hang a run.
    Raises OSError when the file cannot be opened, NotAFile when it is not
    a regular file.
    """
    _regular(os.stat(path).st_mode)
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    fd = os.open(path, flags)
    try:
        _regular(os.fstat(fd).st_mode)  # it may have been replaced since the stat
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: Path, limit: int) -> bytes:
    """The bytes of ``path``, a regular file of at most ``limit`` bytes, without
    reading more than that (see open_regular). Too big is NotAFile."""
    with open_regular(path) as file:
        size = os.fstat(file.fileno()).st_size
        data = file.read(limit + 1) if size <= limit else b""
        if size > limit or len(data) > limit:
            raise NotAFile(f"is larger than {_megabytes(limit)} "
                           f"({_megabytes(max(size, len(data)))})")
    return data


def _regular(mode: int) -> None:
    if not stat.S_ISREG(mode):
        kind = _KINDS.get(stat.S_IFMT(mode), "a special file")
        raise NotAFile(f"is not a regular file but {kind}")


def _megabytes(size: int) -> str:
    return f"{size / (1 << 20):.3g} MiB"


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename, so no
    reader ever sees half of it. The temporary name is unique, so two writers
    of one file (two archive builds) never write into each other's."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        # O_EXCL: never an existing file or a symlink planted there; 0o666 less the umask.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DigestError(f"cannot write {path}: {exc.strerror}") from exc
