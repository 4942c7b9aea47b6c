"""Layer boundaries that keep adding an entity a one-spec change (docs/architecture.md)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from iiko_pipeline.core.specs import ENTITY_NAMES, REGISTRY

PACKAGE = Path(__file__).resolve().parents[1] / "iiko_pipeline"
#: Layers above the specs: they must derive every entity from the registry, never name one.
DERIVED = ["defs", "services", "api", "commands", "core"]


def _sources(*folders: str) -> dict[Path, str]:
    return {path: path.read_text() for folder in folders for path in (PACKAGE / folder).rglob("*.py")}


def test_no_layer_above_the_specs_names_an_entity():
    names = "|".join(map(re.escape, ENTITY_NAMES))
    literal = re.compile(rf"""["']({names})["']""")
    found = [f"{path.relative_to(PACKAGE)}: {m.group(0)}" for path, text in _sources(*DERIVED).items()
             if path.name != "specs.py" for m in literal.finditer(text)]
    assert not found, found
    assert [s.name for s in REGISTRY] == list(ENTITY_NAMES)


def test_the_dagster_layer_writes_no_sql():
    sql = re.compile(r"\b(sa\.(select|text|insert|update|delete)|SELECT |INSERT |UPDATE |DELETE FROM)")
    found = [f"{path.relative_to(PACKAGE)}: {m.group(0)}" for path, text in _sources("defs").items()
             for m in sql.finditer(text)]
    assert not found, found
    assert sum(len(t.splitlines()) for t in _sources("defs").values()) < 750  # thin wiring, not the sync


def test_the_core_imports_no_dagster():
    modules = ", ".join(f"iiko_pipeline.core.{p.stem}" for p in (PACKAGE / "core").glob("*.py") if p.stem != "__init__")
    code = (f"import sys, {modules}; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'dagster'); assert not bad, bad")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_prerequisites_follow_the_schemas_references():
    from iiko_pipeline.core.specs import prerequisites, spec

    assert spec("stores").references == ("restaurants",)
    assert set(spec("invoices").references) == {"stores", "suppliers"}
    assert prerequisites("invoices") == ("restaurants", "stores", "suppliers")
    assert prerequisites("restaurants") == ()
