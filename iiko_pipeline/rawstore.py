"""Raw iiko answers on disk, exactly as received, gzip-compressed, addressed by content hash.

Keeping the bytes lets anyone replay or debug a sync without asking iiko again (and without a licence seat).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from iiko_pipeline.private_files import private_dirs, private_file


@dataclass(frozen=True)
class RawPart:
    """One answer: e.g. the suppliers list, or one invoice export window."""

    label: str  # "suppliers" or "2024-03-01..2024-03-07"
    path: str
    size: int  # uncompressed bytes
    sha256: str
    records: int


@dataclass(frozen=True)
class RawCapture:
    """All answers of one raw asset materialization."""

    entity: str
    account_id: str
    parts: tuple[RawPart, ...] = field(default_factory=tuple)
    window_from: str | None = None
    window_to: str | None = None
    failure: str | None = None  # set when a later window could not be fetched: the parts are a prefix

    @property
    def sha256(self) -> str:
        """The data version: a hash over the parts' hashes in order."""
        digest = hashlib.sha256()
        for part in self.parts:
            digest.update(part.sha256.encode())
        return digest.hexdigest()

    @property
    def size(self) -> int:
        return sum(p.size for p in self.parts)

    @property
    def records(self) -> int:
        return sum(p.records for p in self.parts)

    def stream_parts(self) -> Iterator[tuple[RawPart, BinaryIO]]:
        """Each part as an open decompressing stream, closed when the caller moves on: a parser reading it
        holds a few KB of XML at a time instead of a whole window (tens of MB)."""
        for part in self.parts:
            with gzip.open(part.path, "rb") as stream:
                yield part, stream


#: gzip level of every stored answer: 4-5x faster than 6, and XML still shrinks about 8x.
_COMPRESSLEVEL = 1


def _entity_folder(base_dir: Path, account_id: str, entity: str) -> Path:
    """Where an account's answers for one entity are kept."""
    return base_dir / account_id / entity


def _stored_path(folder: Path, sha256: str, answer_format: str) -> Path:
    """An answer's file: named by its hash, so identical answers share one file."""
    return folder / f"{sha256}.{answer_format}.gz"


#: What an XML export answer's documents start with (``<document>`` or ``<document attr=...>``).
DOCUMENT_OPENINGS = (b"<document>", b"<document ")


def count_documents(body: bytes) -> int:
    """Documents in an export answer, counted on the bytes: an independent count (no parser involved) for the
    raw-vs-frame check, and no second parse of tens of megabytes."""
    return sum(body.count(opening) for opening in DOCUMENT_OPENINGS)


class RawSpool:
    """One answer written to the raw store as it arrives: compressed to a private temporary file, hashed and
    its documents counted piece by piece, so a window's body (tens of MB) is never held in memory.

    The transport writes the pieces of one attempt; `discard` drops a failed or refused attempt, `open` reads
    the answer back for the client's document check, and `keep` files it under its hash as `write_raw` would."""

    def __init__(self, base_dir: Path, account_id: str, entity: str, answer_format: str = "xml") -> None:
        self._folder = private_dirs(_entity_folder(base_dir, account_id, entity))
        self._format = answer_format
        self.path = self._folder / f".{uuid.uuid4().hex}.{answer_format}.gz.part"
        self._file = os.fdopen(private_file(self.path), "wb")
        self._gzip = gzip.GzipFile(fileobj=self._file, mode="wb", compresslevel=_COMPRESSLEVEL)
        self._digest = hashlib.sha256()
        self._tail = b""  # the last bytes received: an opening cut between two pieces is counted once
        self.size = 0
        self.documents = 0
        self.blank = True  # only whitespace so far

    def write(self, piece: bytes) -> None:
        self._gzip.write(piece)
        self._digest.update(piece)
        self.size += len(piece)
        if self.blank and piece.strip():
            self.blank = False
        # an opening cut in two: its first bytes end the previous piece (kept in `_tail`), its rest starts this one
        cut = len(DOCUMENT_OPENINGS[0]) - 1
        self.documents += count_documents(piece) + count_documents(self._tail + piece[:cut])
        self._tail = (self._tail + piece[-cut:])[-cut:]

    def close(self) -> None:
        """Finish the compressed file (idempotent); the transport calls it when the body is complete."""
        if not self._file.closed:
            self._gzip.close()
            self._file.close()

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    def open(self) -> BinaryIO:
        """The answer as received, decompressing (the spool must be closed)."""
        return gzip.open(self.path, "rb")

    def discard(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)

    def keep(self, label: str) -> RawPart:
        """File the answer under its hash (an identical one already there is kept) and describe it."""
        self.close()
        path = _stored_path(self._folder, self.sha256, self._format)
        if path.exists():
            self.path.unlink(missing_ok=True)
        else:
            self.path.replace(path)
        return RawPart(label=label, path=str(path), size=self.size, sha256=self.sha256, records=self.documents)


#: A leftover younger than this may belong to a step still writing it (another run's, during a takeover).
LEFTOVER_AGE_S = 3600.0


def sweep_leftovers(base_dir: Path, account_id: str, entity: str, older_than: float = LEFTOVER_AGE_S) -> int:
    """Delete the temporary files a killed process left in an entity's raw folder (a spool's `.part`, a
    `write_raw` `.tmp`): nothing reads them, and a year of killed runs would fill the disk. Returns how many."""
    folder = _entity_folder(base_dir, account_id, entity)
    if not folder.is_dir():
        return 0
    cutoff = time.time() - older_than
    swept = 0
    for path in (*folder.glob(".*.part"), *folder.glob("*.tmp")):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                swept += 1
        except FileNotFoundError:  # gone meanwhile
            continue
    return swept


def write_raw(base_dir: Path, account_id: str, entity: str, label: str, body: bytes, records: int,
              answer_format: str = "xml") -> RawPart:
    """Store one answer under base_dir/account/entity/<sha256>.<format>.gz (idempotent for identical bytes)."""
    sha = hashlib.sha256(body).hexdigest()
    path = _stored_path(private_dirs(_entity_folder(base_dir, account_id, entity)), sha, answer_format)
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        with os.fdopen(private_file(tmp), "wb") as raw, \
                gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=_COMPRESSLEVEL) as fh:
            fh.write(body)
        tmp.replace(path)
    return RawPart(label=label, path=str(path), size=len(body), sha256=sha, records=records)
