"""Escrow of live iiko session tokens, so a run that dies does not keep a customer's licence seat for an hour.

Every iiko login takes one seat of the customer's API licence until logout or token expiry (~1 h). A run that is
SIGKILLed, OOM-killed or loses its machine never reaches its ``logout``; the next run then fails for lack of a
seat, or takes a second one. So a run saves its token here right after login and deletes it right after logout;
whoever recovers a dead run (see :func:`iiko_pipeline.warehouse.run_locks.steal_if_stale`) reads the tokens the
dead run left (:func:`sessions_of`, excluding its own run), logs each out and deletes it.

The token is a bearer secret for the customer's server, so it is stored like credentials: an AES-GCM envelope from
the project's :class:`~iiko_pipeline.warehouse.crypto.KeyRing`, bound (AAD) to the account and to the purpose
``iiko-session``, so a token cannot be moved to another account, nor an envelope be read as credentials or the
other way round. The sealed plaintext also carries the run id and server URL: a recoverer sends the token only to
the URL sealed with it, so editing the plain ``base_url`` column cannot redirect a token to another host.

Session envelopes are not part of ``rotate_keys``: they live about an hour, so keep a retired key in
``CREDENTIAL_ENCRYPTION_PREVIOUS_KEYS`` for that long after a rotation, or their seats expire on their own.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .crypto import CredentialDecryptError, KeyRing, account_uuid
from .engine import insert_for
from .schema import iiko_sessions as sessions_table
from .sqltypes import utcnow

logger = logging.getLogger(__name__)

#: The integration type bound into the envelope's AAD: distinct from every credentials integration type ("iiko").
SESSION_PURPOSE = "iiko-session"


@dataclass(frozen=True)
class EscrowedSession:
    """A live (or lately live) iiko session of one run, decrypted in memory for its logout.

    ``repr``/``str`` never show the token, so logging the object or a traceback showing it leaks nothing.
    """

    account_id: uuid.UUID
    run_id: str
    base_url: str
    token: str
    created_at: datetime

    def __repr__(self) -> str:
        return (
            f"EscrowedSession(account_id={self.account_id!r}, run_id={self.run_id!r}, base_url={self.base_url!r}, "
            f"token='***', created_at={self.created_at!r})"
        )

    __str__ = __repr__


def save_session(
    engine: Engine,
    keyring: KeyRing,
    account_id: uuid.UUID | str,
    run_id: str,
    base_url: str,
    token: str,
    now: datetime | None = None,
) -> None:
    """Escrow the token of the session ``run_id`` just opened on ``base_url`` (call it right after login).

    A second login of the same run (iiko expired the token, the client logged in again) replaces the row: the
    old token is gone from the server by then, and one row per run is all a recoverer needs.
    """
    if not isinstance(token, str) or not token:
        raise ValueError("token must be a non-empty string")
    if not isinstance(base_url, str) or not base_url:
        raise ValueError("base_url must be a non-empty string")
    account = account_uuid(account_id)
    plaintext = json.dumps({"run_id": run_id, "base_url": base_url, "token": token}).encode("utf-8")
    values = {
        "base_url": base_url,
        "token_ciphertext": keyring.seal(account, SESSION_PURPOSE, plaintext),
        "key_id": keyring.current_key_id,
        "created_at": now or utcnow(),
    }
    with engine.begin() as conn:
        insert = insert_for(conn)
        stmt = insert(sessions_table).values(account_id=account, run_id=run_id, **values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[sessions_table.c.account_id, sessions_table.c.run_id],
            set_={name: stmt.excluded[name] for name in values},
        )
        conn.execute(stmt)


def delete_session(engine: Engine, account_id: uuid.UUID | str, run_id: str) -> bool:
    """Forget the session of ``run_id`` (after its logout, by the run or a recoverer). Returns whether it existed."""
    with engine.begin() as conn:
        return conn.execute(
            sa.delete(sessions_table).where(
                sessions_table.c.account_id == account_uuid(account_id), sessions_table.c.run_id == run_id
            )
        ).rowcount > 0


def _open(keyring: KeyRing, row: Any) -> EscrowedSession | None:
    """Decrypt one row; None (with a warning naming account, run and key id, never the token) if it cannot be.

    Only v1 envelopes are accepted: the legacy fixed-nonce path has no AAD, so it would bind nothing.
    """
    where = f"escrowed iiko session of account {row.account_id}, run {row.run_id} (key {row.key_id})"
    try:
        opened = keyring.open_detailed(row.account_id, SESSION_PURPOSE, row.token_ciphertext)
        if opened.kind != "v1":
            raise CredentialDecryptError("not a v1 envelope")
        data = json.loads(opened.plaintext.decode("utf-8"))
        token, base_url, run_id = data["token"], data["base_url"], data["run_id"]
    except CredentialDecryptError:
        logger.warning("%s cannot be decrypted (altered, another account, or an unconfigured key); skipped", where)
        return None
    except (ValueError, KeyError, TypeError):
        logger.warning("%s decrypted, but is not a session object; skipped", where)
        return None
    if not isinstance(token, str) or not token or run_id != row.run_id or base_url != row.base_url:
        logger.warning("%s does not match its row (run id or server URL changed); skipped", where)
        return None
    return EscrowedSession(
        account_id=row.account_id, run_id=row.run_id, base_url=base_url, token=token, created_at=row.created_at
    )


def sessions_of(
    engine: Engine, keyring: KeyRing, account_id: uuid.UUID | str, exclude_run_id: str | None = None
) -> list[EscrowedSession]:
    """The account's escrowed sessions, decrypted, oldest first; ``exclude_run_id`` leaves the caller's own out.

    A row that cannot be decrypted, or whose sealed run id or URL disagrees with its columns, is logged and left
    out rather than failing the whole recovery: its token cannot be logged out anyway (it expires on iiko's side
    within the hour), and the row stays for :func:`delete_session` or inspection.
    """
    account = account_uuid(account_id)
    c = sessions_table.c
    stmt = sa.select(c.account_id, c.run_id, c.base_url, c.token_ciphertext, c.key_id, c.created_at).where(
        c.account_id == account
    )
    if exclude_run_id is not None:
        stmt = stmt.where(c.run_id != exclude_run_id)
    with engine.connect() as conn:
        rows = conn.execute(stmt.order_by(c.created_at, c.run_id)).all()
    return [session for session in (_open(keyring, row) for row in rows) if session is not None]


def sessions_of_run(engine: Engine, keyring: KeyRing, run_id: str) -> list[EscrowedSession]:
    """The escrowed sessions of one run, whatever its account (a server's seat lock knows only the run)."""
    c = sessions_table.c
    with engine.connect() as conn:
        accounts = conn.execute(sa.select(c.account_id).where(c.run_id == run_id).distinct()).scalars().all()
    return [s for account in accounts for s in sessions_of(engine, keyring, account) if s.run_id == run_id]
