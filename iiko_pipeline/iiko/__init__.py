"""Layer 1: the iiko Server HTTP client (HTTP, XML and the JSON v2 lists; see docs/architecture.md).

Errors live in :mod:`iiko_pipeline.iiko.errors`, streaming record parsers in
:mod:`iiko_pipeline.iiko.parsing`.
"""

from .client import ClientSettings, IikoClient
from .errors import IikoNotAvailableError
from .models import DateWindow, IikoJsonResponse, IikoResponse, InvoiceWindow, ServerInfo
from .retry import RetryPolicy
from .windows import split_windows
from .xml import xml_to_dict

__all__ = [
    "ClientSettings",
    "DateWindow",
    "IikoClient",
    "IikoJsonResponse",
    "IikoNotAvailableError",
    "IikoResponse",
    "InvoiceWindow",
    "RetryPolicy",
    "ServerInfo",
    "split_windows",
    "xml_to_dict",
]
