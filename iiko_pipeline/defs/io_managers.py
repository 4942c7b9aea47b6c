"""Parquet storage for parsed frames (`iiko_pipeline.framestore`): one folder per asset and account partition
under the instance storage. It consumes a `FrameSet` chunk by chunk and hands the next step a lazy reader, so
a year of invoices never sits in memory at once.
"""

from pathlib import Path
from typing import Any

import dagster as dg

from iiko_pipeline.frames import FrameSet
from iiko_pipeline.framestore import read_frames, write_frames


class ParquetFrameIOManager(dg.ConfigurableIOManager):
    """Columnar, typed and inspectable with any Parquet reader."""

    base_dir: str = ""

    def _folder(self, instance: dg.DagsterInstance, context: dg.OutputContext | dg.InputContext) -> Path:
        base = Path(self.base_dir) if self.base_dir else Path(instance.storage_directory()) / "frames"
        key = "/".join(context.asset_key.path)
        return base / key / (context.asset_partition_key if context.has_asset_partitions else "_")

    def handle_output(self, context: dg.OutputContext, obj: FrameSet) -> None:
        folder = self._folder(context.step_context.instance, context)
        write_frames(obj, folder)
        context.add_output_metadata(_metadata(obj, folder))

    def load_input(self, context: dg.InputContext) -> FrameSet:
        return read_frames(self._folder(context.instance, context))


def _metadata(frames: FrameSet, folder: Path) -> dict[str, Any]:
    errors = frames.errors
    metadata: dict[str, Any] = {
        "dagster/row_count": frames.row_count,
        "source_records": frames.source_records,
        "rejected": len(errors),
        "skipped_other_records": frames.source_records - frames.row_count - len(errors),
        "chunks": len(frames.chunk_summaries),
        "answers": len(frames.answers),
        "unchanged_answers_skipped": sum(1 for c in frames.answers if c.get("unchanged")),
        "frame_path": dg.MetadataValue.path(str(folder)),
    }
    children = sum(c["children"] for c in frames.chunk_summaries)
    if children:
        metadata["line_items"] = children
    if errors:
        metadata["error_details"] = dg.MetadataValue.json(errors[:20])
    return metadata
