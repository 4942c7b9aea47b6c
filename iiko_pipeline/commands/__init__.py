"""Sub-commands of `iiko-pipeline`. Each module exposes `register(subparsers)` and sets `handler`.

Heavy imports (dagster, pandas, SQLAlchemy) happen inside the handlers, so `iiko-pipeline emulator` starts fast.
"""

from iiko_pipeline.commands import accounts, api, demo, dev, emulator, sync

REGISTRY = [emulator, accounts, sync, demo, dev, api]
