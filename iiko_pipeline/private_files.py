"""Everything we write is private to the service's user: files 0600, folders 0700, whatever the umask.

Raw answers, frames, the SQLite warehouse and the demo key hold a customer's business data (suppliers, prices,
documents) or a secret; under the usual umask 022 they were readable by every user of the machine. The writers
create them with these modes explicitly, and the command line sets the umask for itself and every process it
starts (`dagster dev`'s webserver, daemon and code servers, run processes), so Dagster's own instance files
are private too. A production service started otherwise should run with `umask 077` (see the README).
"""

from __future__ import annotations

import os
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700
UMASK = 0o077


def private_umask() -> None:
    os.umask(UMASK)


def private_dirs(path: Path) -> Path:
    """`mkdir -p` that gives every folder it creates (not existing ones) mode 0700."""
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=DIR_MODE)
        except FileExistsError:  # another process made it meanwhile
            continue
        os.chmod(folder, DIR_MODE)  # mkdir's mode is filtered by the umask
    return path


def private_file(path: Path) -> int:
    """Create (or truncate) a file readable by its owner only; returns an OS file descriptor."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    os.fchmod(fd, FILE_MODE)  # an existing file keeps its old mode otherwise
    return fd


def make_private(path: Path) -> None:
    """Tighten a file another library created (Parquet, a database file)."""
    os.chmod(path, FILE_MODE)
