"""What we write is private to the service's user (issue 13): raw answers, frames, the raw step's result and
the SQLite warehouse are 0600 in 0700 folders even under the usual umask 022, and the command line sets umask
077 for itself and the processes it starts (Dagster's own instance files included)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
import sqlalchemy as sa

from iiko_pipeline.frames import FrameSet, ParsedFrame
from iiko_pipeline.framestore import write_frames
from iiko_pipeline.rawstore import write_raw
from iiko_pipeline.warehouse.engine import make_engine


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    old = os.umask(0o022)  # what most machines run with: files 0644, folders 0755
    try:
        yield
    finally:
        os.umask(old)


def test_raw_answers_are_private(tmp_path, open_umask):
    part = write_raw(tmp_path / "raw", "acc", "suppliers", "suppliers", b"<employees/>", 0)
    path = Path(part.path)
    assert _mode(path) == 0o600
    assert [_mode(p) for p in (path.parent, path.parent.parent, tmp_path / "raw")] == [0o700] * 3


def test_frames_are_private(tmp_path, open_umask):
    chunk = ParsedFrame(entity="suppliers", label="suppliers", rows=pa.table({"external_id": ["a"]}),
                        source_records=1)
    frames = FrameSet("suppliers", lambda: iter([chunk]))
    write_frames(frames, tmp_path / "frames" / "suppliers_frame" / "acc")
    folder = tmp_path / "frames" / "suppliers_frame" / "acc"
    files = list(folder.iterdir())
    assert files and {_mode(f) for f in files} == {0o600}
    assert _mode(folder) == 0o700 and _mode(tmp_path / "frames") == 0o700


def test_the_sqlite_warehouse_and_its_wal_are_private(tmp_path, open_umask):
    path = tmp_path / "home" / "warehouse.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (x INTEGER)"))
        conn.execute(sa.text("INSERT INTO t VALUES (1)"))
    try:
        written = [p for p in path.parent.iterdir() if p.name.startswith("warehouse.db")]
        assert {p.name for p in written} >= {"warehouse.db", "warehouse.db-wal"}
        assert {_mode(p) for p in written} == {0o600} and _mode(path.parent) == 0o700
    finally:
        engine.dispose()


def test_the_command_line_runs_with_a_private_umask():
    code = ("import os, sys\nfrom iiko_pipeline.cli import main\nos.umask(0o022)\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\nprint(oct(os.umask(0)), file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stderr.strip().splitlines()[-1] == "0o77", done.stderr


def test_a_partition_key_that_is_not_an_account_id_never_becomes_a_path(tmp_path):
    """The frame store replaces and removes folders named after the partition: only a UUID may name one."""
    import dagster as dg

    from iiko_pipeline.defs.io_managers import ParquetFrameIOManager, RawResultIOManager

    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        for bad in ("../../etc", "a/b", "not-a-uuid"):
            context = dg.build_output_context(asset_key=dg.AssetKey("suppliers_frame"), partition_key=bad)
            with pytest.raises(ValueError, match="is not an account id"):
                ParquetFrameIOManager()._folder(instance, context)
            with pytest.raises(ValueError, match="is not an account id"):
                RawResultIOManager()._path(instance, context)
        good = dg.build_output_context(asset_key=dg.AssetKey("suppliers_frame"),
                                       partition_key="3A5C99A2-EACA-56C9-821D-5510AECAFB5A")
        assert ParquetFrameIOManager()._folder(instance, good).name == "3a5c99a2-eaca-56c9-821d-5510aecafb5a"
