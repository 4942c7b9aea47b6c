"""A faithful fake iiko Server (layer 2): real HTTP on localhost, deterministic Cyrillic data, licence
seats, token TTLs, fault injection and a `/_emulator/` control API. Stdlib only for HTTP.

    from iiko_pipeline.emulator import EmulatorConfig, EmulatorServer
    with EmulatorServer(EmulatorConfig(port=0, scale="tiny")) as emu:
        emu.url      # "http://127.0.0.1:<port>"
        emu.state    # truth (.dataset), request .log, .faults, .sessions

See README.md in this package for the control API.
"""

from .config import SCALES, EmulatorConfig, Scale
from .models import CorporateItem, Employee, Invoice, InvoiceItem, NomenclatureItem, ProductGroup, Supplier
from .server import EmulatorServer, serve, serve_forever
from .state import EmulatorState

__all__ = [
    "SCALES",
    "CorporateItem",
    "Employee",
    "EmulatorConfig",
    "EmulatorServer",
    "EmulatorState",
    "Invoice",
    "InvoiceItem",
    "NomenclatureItem",
    "ProductGroup",
    "Scale",
    "Supplier",
    "serve",
    "serve_forever",
]
