"""Writing output files whole or not at all, with the permissions the user's umask asks for.

Standard library only: this package also runs inside the training container.

``tempfile.mkstemp`` creates files ``-rw-------``; renamed into place they would keep that
mode whatever the umask, so a colleague or a container user could not read the outputs.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

_UMASK_LOCK = threading.Lock()


def umask_mode(base: int = 0o666) -> int:
    """``base`` with the process umask applied: what ``open()`` would create."""
    with _UMASK_LOCK:  # os.umask can only be read by setting it
        current = os.umask(0o022)
        os.umask(current)
    return base & ~current


@contextlib.contextmanager
def atomic_writer(path: Path) -> Iterator[BinaryIO]:
    """A binary handle on a temporary file beside ``path``, renamed to ``path`` on success
    and removed on error. The folder must exist."""
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, umask_mode())
        with os.fdopen(fd, "wb") as handle:
            yield handle
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_atomically(path: Path, content: bytes) -> None:
    with atomic_writer(path) as handle:
        handle.write(content)
