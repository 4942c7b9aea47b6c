"""Parquet storage for parsed frames, one folder per asset and account partition under the instance storage."""


import json
from pathlib import Path

import dagster as dg
import pandas as pd

from iiko_pipeline.frames import ParsedFrame


class ParquetFrameIOManager(dg.ConfigurableIOManager):
    """Columnar, typed and inspectable with any Parquet reader; errors and counts beside it as JSON."""

    base_dir: str = ""

    def _folder(self, instance: dg.DagsterInstance, context: dg.OutputContext | dg.InputContext) -> Path:
        base = Path(self.base_dir) if self.base_dir else Path(instance.storage_directory()) / "frames"
        key = "/".join(context.asset_key.path)
        return base / key / (context.asset_partition_key if context.has_asset_partitions else "_")

    def handle_output(self, context: dg.OutputContext, obj: ParsedFrame) -> None:
        folder = self._folder(context.step_context.instance, context)
        folder.mkdir(parents=True, exist_ok=True)
        obj.rows.to_parquet(folder / "rows.parquet", index=False)
        obj.children.to_parquet(folder / "children.parquet", index=False)
        meta = {"entity": obj.entity, "errors": obj.errors, "source_records": obj.source_records,
                "window_from": obj.window_from, "window_to": obj.window_to, "windows": obj.windows,
                "failure": obj.failure}
        (folder / "meta.json").write_text(json.dumps(meta, ensure_ascii=False, default=str))
        context.add_output_metadata({"frame_path": dg.MetadataValue.path(str(folder))})

    def load_input(self, context: dg.InputContext) -> ParsedFrame:
        folder = self._folder(context.instance, context)
        meta = json.loads((folder / "meta.json").read_text())
        return ParsedFrame(entity=meta["entity"], rows=pd.read_parquet(folder / "rows.parquet"),
                           children=pd.read_parquet(folder / "children.parquet"), errors=meta["errors"],
                           source_records=meta["source_records"], window_from=meta["window_from"],
                           window_to=meta["window_to"], windows=meta.get("windows", []),
                           failure=meta.get("failure"))
