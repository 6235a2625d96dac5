"""Atomic file writes: a temp file beside the target, renamed onto it only when complete.

A crash or Ctrl-C never leaves a half-written array, manifest or run file behind.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_ATTEMPTS = 100  # fresh random names tried before giving up (a collision is already ~2**-48)


def _create_beside(target: Path) -> Path:
    """Create an empty, new file next to ``target`` (same suffixes) and return its path.

    The file is created with mode 0666, which the kernel reduces by the process umask, so it gets the
    permissions a plain ``open(target, "w")`` would give. Hand-written rather than
    :func:`tempfile.mkstemp` because mkstemp always creates mode 0600, and fixing that afterwards needs
    the umask, which POSIX can only read by setting it (a moment in which another thread, such as a
    trial's heartbeat, would create files with umask 0).
    """
    suffix = "".join(target.suffixes)
    for _ in range(_ATTEMPTS):
        path = target.parent / f".{target.name}.{secrets.token_hex(6)}{suffix}"
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"could not create a temporary file beside {target} in {_ATTEMPTS} attempts")


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """A temp path beside ``target`` (same suffixes) that is renamed onto it when the block succeeds.

    The file gets the permissions a plain ``open(target, "w")`` would give; the process umask is
    never changed. On any exception the temp file is removed and ``target`` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_beside(target)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write text to ``path`` atomically."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)
