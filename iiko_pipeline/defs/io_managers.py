"""Parquet storage for parsed frames: one folder per asset and account partition under the instance storage.

It consumes a `FrameSet` chunk by chunk (one raw answer at a time) and hands the next step a lazy reader, so
a year of invoices never sits in memory at once. A manifest beside the Parquet files keeps the counts, the ids
per chunk and the rejected records for checks and metadata.
"""

import json
import shutil
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow.parquet as pq

from iiko_pipeline.frames import FrameSet, ParsedFrame, chunk_summary

MANIFEST = "manifest.json"


class ParquetFrameIOManager(dg.ConfigurableIOManager):
    """Columnar, typed and inspectable with any Parquet reader."""

    base_dir: str = ""

    def _folder(self, instance: dg.DagsterInstance, context: dg.OutputContext | dg.InputContext) -> Path:
        base = Path(self.base_dir) if self.base_dir else Path(instance.storage_directory()) / "frames"
        key = "/".join(context.asset_key.path)
        return base / key / (context.asset_partition_key if context.has_asset_partitions else "_")

    def handle_output(self, context: dg.OutputContext, obj: FrameSet) -> None:
        folder = self._folder(context.step_context.instance, context)
        tmp = folder.with_name(folder.name + ".writing")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        chunks = []
        for index, chunk in enumerate(obj.chunks()):
            pq.write_table(chunk.rows, tmp / f"{index:04d}.rows.parquet")
            pq.write_table(chunk.children, tmp / f"{index:04d}.children.parquet")
            chunks.append({**chunk_summary(chunk), "file": f"{index:04d}"})
        manifest = {"entity": obj.entity, "window_from": obj.window_from, "window_to": obj.window_to,
                    "failure": obj.failure, "chunks": chunks}
        (tmp / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, default=str))
        shutil.rmtree(folder, ignore_errors=True)
        tmp.replace(folder)  # readers see the old frames or the new ones, never half of each
        obj.summary = manifest
        context.add_output_metadata(_metadata(obj, folder))

    def load_input(self, context: dg.InputContext) -> FrameSet:
        folder = self._folder(context.instance, context)
        manifest = json.loads((folder / MANIFEST).read_text())

        def chunks():
            for chunk in manifest["chunks"]:
                yield ParsedFrame(
                    entity=manifest["entity"], rows=pq.read_table(folder / f"{chunk['file']}.rows.parquet"),
                    children=pq.read_table(folder / f"{chunk['file']}.children.parquet"),
                    errors=chunk["errors"], source_records=chunk["source_records"], label=chunk["label"],
                    window_from=chunk["from"], window_to=chunk["to"], fingerprint=chunk.get("fingerprint"),
                    unchanged=bool(chunk.get("unchanged")),
                    known_ids=chunk["ids"] if chunk.get("unchanged") else [])

        return FrameSet(manifest["entity"], chunks, manifest["window_from"], manifest["window_to"],
                        manifest["failure"], summary=manifest)


def _metadata(frames: FrameSet, folder: Path) -> dict[str, Any]:
    errors = frames.errors
    metadata: dict[str, Any] = {
        "dagster/row_count": frames.row_count,
        "source_records": frames.source_records,
        "rejected": len(errors),
        "skipped_other_records": frames.source_records - frames.row_count - len(errors),
        "chunks": len(frames.windows),
        "unchanged_answers_skipped": sum(1 for c in frames.windows if c.get("unchanged")),
        "frame_path": dg.MetadataValue.path(str(folder)),
    }
    children = sum(c["children"] for c in frames.windows)
    if children:
        metadata["line_items"] = children
    if errors:
        metadata["error_details"] = dg.MetadataValue.json(errors[:20])
    return metadata
