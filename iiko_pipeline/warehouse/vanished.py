"""When rows the source no longer returns may be marked deleted: one rule for every entity.

A row we hold that iiko did not return has vanished: iiko deleted it, or the answer is wrong. An answer is far
more often wrong (a fault, a user whose rights shrank, a half-exported list) than a restaurant chain deleting
most of its suppliers at once, so deletions are withheld, and the reason reported as a warning, when:
- iiko returned nothing while we hold rows;
- more than `max_vanished_share` of the rows we hold would vanish at once.
Records iiko returned but our adapter rejected count as returned: they exist at iiko, we only could not store
their new version.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from iiko_pipeline.warehouse.upsert import id_chunks

#: Above this share of held rows vanishing at once, nothing is deleted (configurable per run).
DEFAULT_MAX_VANISHED_SHARE = 0.2


def withheld_because(scope: str, noun: str, *, held: int, vanished: int, returned: int,
                     max_vanished_share: float = DEFAULT_MAX_VANISHED_SHARE) -> str | None:
    """Why deleting the vanished rows must wait (a sentence for the run's warning), or None to go ahead."""
    if not vanished:
        return None
    if returned == 0:
        return f"{scope}: iiko returned no {noun} while we hold {held}; nothing deleted"
    share = vanished / held if held else 1.0
    if share > max_vanished_share:
        return (f"{scope}: {vanished} of {held} {noun} ({share:.0%}) would vanish, above the "
                f"{max_vanished_share:.0%} limit; nothing deleted")
    return None


def mark_deleted(conn: Connection, table: sa.Table, where: Sequence[Any], external_ids: Sequence[str],
                 **values: Any) -> int:
    """Soft-delete these rows (`where` scopes them to the account; `values` are the deletion marks), in chunks
    a database takes as an IN list. Returns how many rows were marked."""
    marked = 0
    for chunk in id_chunks(external_ids, 500):
        marked += conn.execute(table.update().where(*where, table.c.external_id.in_(chunk)).values(**values)
                               ).rowcount or 0
    return marked
