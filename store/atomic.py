"""Files and folders that appear whole or not at all: the one way tunesmith writes them.

A file is written to a hidden sibling, flushed to disk and renamed over its name; a folder is
built in a staging folder and renamed into place. A crash, a full disk or a kill leaves either
the old version or the new one, never half of one, and the parent folder is synced so the
rename itself survives a power cut.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


def sync_folder(path: Path) -> None:
    """Flush ``path``'s entries (a rename into it) to disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def atomic_text_file(path: Path, *, mode: int = 0o600) -> Iterator[IO[str]]:
    """A text handle whose contents replace ``path`` whole when the block ends without error."""
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="\n") as handle:
            os.fchmod(handle.fileno(), mode)
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    sync_folder(path.parent)


def write_atomically(path: Path, text: str, *, mode: int = 0o600) -> None:
    """Replace ``path`` with ``text`` whole, created with ``mode`` (the owner's alone)."""
    with atomic_text_file(path, mode=mode) as handle:
        handle.write(text)


def publish_folder(staging: Path, target: Path) -> None:
    """Rename the complete folder ``staging`` to ``target``, replacing what was there.

    An old ``target`` is renamed away first and removed only once the new one is in place, so
    a failure leaves the old one; it is never deleted through, so links in it are removed, not
    followed.
    """
    if not target.exists():
        staging.replace(target)
        sync_folder(target.parent)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
    target.replace(old)
    try:
        staging.replace(target)
    except OSError:
        old.replace(target)
        raise
    sync_folder(target.parent)
    shutil.rmtree(old, ignore_errors=True)
