"""Every process of ours allocates Arrow memory from the system allocator unless its environment chooses
another pool (see `iiko_pipeline/__init__.py`): a fresh interpreter shows which pool Arrow really uses."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = "import iiko_pipeline.frames, pyarrow as pa; print(pa.default_memory_pool().backend_name)"


@pytest.mark.parametrize(("chosen", "expected"), [(None, "system"), ("jemalloc", "jemalloc")])
def test_arrow_uses_the_system_allocator_unless_the_environment_chooses(chosen: str | None,
                                                                        expected: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    if chosen:
        env["ARROW_DEFAULT_MEMORY_POOL"] = chosen
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == expected
