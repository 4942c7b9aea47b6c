"""Parsed frames spooled to Parquet (one folder per entity and account) and read back lazily.

The table step needs the whole capture's summary before it writes the first window (every id iiko returned,
so a document that moved to another window is not taken for deleted), while the rows themselves should never
sit in memory at once. Spooling does both: chunks go to disk one by one, the manifest keeps counts, ids and
rejected records, and the reader yields chunks back one at a time. The Dagster IO manager and any direct
caller of the core (the bench) use the same two functions.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from iiko_pipeline.frames import EMPTY, FrameSet, ParsedFrame, chunk_summary
from iiko_pipeline.private_files import make_private, private_dirs, private_file

MANIFEST = "manifest.json"


def write_frames(frames: FrameSet, folder: Path) -> dict[str, Any]:
    """Consume the frame set into `folder` (replaced atomically) and return its manifest, which also becomes
    `frames.summary`."""
    tmp = folder.with_name(folder.name + ".writing")
    shutil.rmtree(tmp, ignore_errors=True)
    private_dirs(tmp)
    chunks = []
    for index, chunk in enumerate(frames.chunks()):
        for kind, table in (("rows", chunk.rows), ("children", chunk.children)):
            path = tmp / f"{index:04d}.{kind}.parquet"
            pq.write_table(table, path)
            make_private(path)
        chunks.append({**chunk_summary(chunk, with_ids=frames.ids_kept or chunk.unchanged), "file": f"{index:04d}"})
    manifest = {"entity": frames.entity, "window_from": frames.window_from, "window_to": frames.window_to,
                "failure": frames.failure, "ids_kept": frames.ids_kept, "chunks": chunks}
    with os.fdopen(private_file(tmp / MANIFEST), "w", encoding="utf-8") as fh:
        fh.write(json.dumps(manifest, ensure_ascii=False, default=str))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.replace(folder)  # readers see the old frames or the new ones, never half of each
    frames.summary = manifest
    return manifest


def read_frames(folder: Path) -> FrameSet:
    """The spooled frame set: summary at once, chunks lazily."""
    manifest = json.loads((folder / MANIFEST).read_text())

    def frame(chunk: dict[str, Any]) -> ParsedFrame:
        unchanged = bool(chunk.get("unchanged"))  # an unchanged answer's chunk is its ids only: no file read
        return ParsedFrame(
            entity=manifest["entity"], rows=EMPTY if unchanged else _read(folder, chunk, "rows"),
            children=EMPTY if unchanged else _read(folder, chunk, "children"),
            errors=chunk["errors"], source_records=chunk["source_records"], label=chunk["label"],
            window_from=chunk["from"], window_to=chunk["to"], fingerprint=chunk.get("fingerprint"),
            unchanged=unchanged, known_ids=chunk["ids"] if unchanged else [], kept_ids=chunk.get("kept", []))

    def chunks() -> Iterator[ParsedFrame]:
        return (frame(chunk) for chunk in manifest["chunks"])

    def window_chunks(label: str) -> Iterator[ParsedFrame]:
        return (frame(chunk) for chunk in manifest["chunks"] if chunk["label"] == label)

    return FrameSet(manifest["entity"], chunks, manifest["window_from"], manifest["window_to"],
                    manifest["failure"], summary=manifest, ids_kept=manifest.get("ids_kept", True),
                    window_source=window_chunks)


def _read(folder: Path, chunk: dict[str, Any], kind: str) -> pa.Table:
    """One spooled table. `ParquetFile.read` rather than `read_table`: the latter goes through
    `pyarrow.dataset`, whose import (pandas with it) cost each fresh run process about half a second."""
    with pq.ParquetFile(folder / f"{chunk['file']}.{kind}.parquet") as parquet:
        return parquet.read()
