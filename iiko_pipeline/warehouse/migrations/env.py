"""Alembic environment for the warehouse, configured programmatically (no alembic.ini needed).

``iiko_pipeline.warehouse.migrate.migrate()`` passes an open connection in
``config.attributes["connection"]``; the ``alembic`` command line (with an ini that points
``script_location`` here) falls back to ``sqlalchemy.url`` or ``$DATABASE_URL``.
SQLite gets ``render_as_batch=True`` because it cannot ALTER most things in place.
"""

from __future__ import annotations

from alembic import context

from iiko_pipeline.warehouse.engine import make_engine
from iiko_pipeline.warehouse.migrate import VERSION_TABLE
from iiko_pipeline.warehouse.schema import metadata
from iiko_pipeline.warehouse.settings import database_url, normalise_database_url

config = context.config
target_metadata = metadata


def _url() -> str:
    return normalise_database_url(config.get_main_option("sqlalchemy.url") or database_url())


def _configure(**kwargs: object) -> None:
    context.configure(target_metadata=target_metadata, compare_type=True, version_table=VERSION_TABLE, **kwargs)


def run_migrations_offline() -> None:
    """Emit SQL to stdout (``alembic upgrade --sql``)."""
    url = _url()
    _configure(url=url, literal_binds=True, render_as_batch=url.startswith("sqlite"))
    with context.begin_transaction():
        context.run_migrations()


def _run(connection: object) -> None:
    _configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")  # type: ignore[attr-defined]
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(_url())
    try:
        with engine.connect() as conn:
            _run(conn)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
