"""Storage between steps, under the instance storage, one file or folder per asset and account partition.

- Parsed frames as Parquet (`iiko_pipeline.framestore`): a `FrameSet` is written chunk by chunk and the next
  step gets a lazy reader, so a year of invoices never sits in memory at once.
- The raw step's small result (where its answers are on disk, under which policy) as a pickle, at the path
  Dagster's default IO manager used, without its three log events per write and load: every event is a write
  to the instance's event log, and on a small account they were a tenth of a run's cost.
"""

import os
import pickle
import uuid
from pathlib import Path
from typing import Any

import dagster as dg

from iiko_pipeline.frames import FrameSet
from iiko_pipeline.framestore import read_frames, write_frames
from iiko_pipeline.private_files import private_dirs, private_file


def _partition(context: dg.OutputContext | dg.InputContext) -> str:
    """The account partition as a path component: a UUID, or an error (never `..` or a slash in a path that
    is about to be replaced or removed)."""
    key = context.asset_partition_key
    try:
        return str(uuid.UUID(key))
    except ValueError:
        raise ValueError(f"partition key {key!r} is not an account id (a UUID)") from None


class ParquetFrameIOManager(dg.ConfigurableIOManager):
    """Columnar, typed and inspectable with any Parquet reader."""

    base_dir: str = ""

    def _folder(self, instance: dg.DagsterInstance, context: dg.OutputContext | dg.InputContext) -> Path:
        base = Path(self.base_dir) if self.base_dir else Path(instance.storage_directory()) / "frames"
        key = "/".join(context.asset_key.path)
        return base / key / (_partition(context) if context.has_asset_partitions else "_")

    def handle_output(self, context: dg.OutputContext, obj: FrameSet) -> None:
        folder = self._folder(context.step_context.instance, context)
        write_frames(obj, folder)
        context.add_output_metadata(_metadata(obj, folder))

    def load_input(self, context: dg.InputContext) -> FrameSet:
        return read_frames(self._folder(context.instance, context))


class RawResultIOManager(dg.ConfigurableIOManager):
    """`core.steps.RawResult` objects (a few hundred bytes each; the answers themselves are gzip files)."""

    def _path(self, instance: dg.DagsterInstance, context: dg.OutputContext | dg.InputContext) -> Path:
        folder = Path(instance.storage_directory()).joinpath(*context.asset_key.path)
        return folder / (_partition(context) if context.has_asset_partitions else "result")

    def handle_output(self, context: dg.OutputContext, obj: object) -> None:
        path = self._path(context.step_context.instance, context)
        private_dirs(path.parent)
        partial = path.with_name(path.name + ".partial")
        with os.fdopen(private_file(partial), "wb") as fh:
            fh.write(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))
        partial.replace(path)  # a reader never sees half a file

    def load_input(self, context: dg.InputContext) -> object:
        return pickle.loads(self._path(context.instance, context).read_bytes())  # noqa: S301 - written by us, above


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
