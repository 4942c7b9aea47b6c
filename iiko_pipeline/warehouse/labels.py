"""Display names operators give accounts on the management pages (`account_labels`).

A name is a convenience for people, never an identifier: runs, partitions and tables stay keyed by the UUID.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .crypto import account_uuid
from .engine import insert_for, write_transaction
from .schema import account_labels
from .sqltypes import utcnow

MAX_NAME_CHARS = 200


def set_display_name(engine: Engine, account_id: uuid.UUID | str, name: str | None) -> None:
    """Store the account's name (trimmed); an empty or missing name removes it."""
    account = account_uuid(account_id)
    name = (name or "").strip()
    if len(name) > MAX_NAME_CHARS:
        raise ValueError(f"a display name must be at most {MAX_NAME_CHARS} characters")
    with write_transaction(engine) as conn:
        if not name:
            conn.execute(sa.delete(account_labels).where(account_labels.c.account_id == account))
            return
        insert = insert_for(conn)(account_labels).values(account_id=account, display_name=name, updated_at=utcnow())
        conn.execute(insert.on_conflict_do_update(index_elements=["account_id"],
                                                  set_={"display_name": name, "updated_at": utcnow()}))


def display_names(engine: Engine, account_ids: Iterable[uuid.UUID | str] | None = None) -> dict[str, str]:
    """{account id: name} for the accounts that have one (all of them, or those given), in one query."""
    stmt = sa.select(account_labels.c.account_id, account_labels.c.display_name)
    if account_ids is not None:
        stmt = stmt.where(account_labels.c.account_id.in_([account_uuid(a) for a in account_ids]))
    with engine.connect() as conn:
        return {str(account): name for account, name in conn.execute(stmt)}
