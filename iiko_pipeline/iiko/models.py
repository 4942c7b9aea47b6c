"""Plain value objects returned by the client.

Why frozen dataclasses: they cross layer boundaries (adapters, Dagster metadata) and must not be mutated
on the way. ``IikoResponse`` keeps the raw bytes so that the caller chooses how to parse them (streaming
for exports, :func:`iiko_pipeline.iiko.xml.parse_document` for small answers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .transport import BodySink


@dataclass(frozen=True)
class ServerInfo:
    """What ``/resto/get_server_info.jsp`` says about the server (``None`` for absent elements)."""

    server_name: str | None
    edition: str | None
    version: str | None
    computer_name: str | None
    server_state: str | None

    @property
    def is_chain(self) -> bool:
        """True for iikoChain (edition ``chain``), False for a standalone iikoRMS."""
        return (self.edition or "").strip().lower() == "chain"


@dataclass(frozen=True)
class IikoResponse:
    """A checked API answer: 2xx, an accepted content type, a well-formed body with the expected root.

    ``endpoint`` is relative to ``/resto/api`` (e.g. ``corporation/departments``); ``body`` is the raw
    bytes as received (after transfer decoding), ``root`` the root element's tag.
    """

    endpoint: str
    status: int
    content_type: str
    body: bytes = field(repr=False)
    root: str
    sink: BodySink | None = field(default=None, repr=False)  # holds the body when it went to disk (body empty)

    def __repr__(self) -> str:
        return (
            f"IikoResponse(endpoint={self.endpoint!r}, status={self.status}, "
            f"content_type={self.content_type!r}, root={self.root!r}, body=<{len(self.body)} bytes>)"
        )


@dataclass(frozen=True)
class IikoJsonResponse:
    """A checked JSON answer: 2xx, ``application/json``, and the records it carries.

    ``body`` is the raw bytes as received (kept as the raw answer); ``items`` the decoded objects in the
    server's order, unknown fields kept. For the ``v2`` lists (entities, balances, cash shifts) the answer is an
    array of objects and non-integral numbers are :class:`~decimal.Decimal`; for an OLAP report the answer is
    ``{"data": [...], "summary": [...]}``, ``items`` are the ``data`` rows and every number is a ``Decimal``.
    """

    endpoint: str
    status: int
    content_type: str
    body: bytes = field(repr=False)
    items: tuple[dict[str, Any], ...] = field(repr=False)

    def __repr__(self) -> str:
        return (
            f"IikoJsonResponse(endpoint={self.endpoint!r}, status={self.status}, "
            f"content_type={self.content_type!r}, items=<{len(self.items)}>, body=<{len(self.body)} bytes>)"
        )


@dataclass(frozen=True)
class DateWindow:
    """One inclusive date window of a windowed request and the answer for it: an incoming-invoice export
    (``IikoResponse``), an OLAP report, a cash-shift list or a balance snapshot (``IikoJsonResponse``; for a
    snapshot ``date_from == date_to``, the day whose end it describes). Both answers keep the raw ``body`` bytes."""

    date_from: date
    date_to: date
    response: IikoResponse | IikoJsonResponse


#: The name the invoice export has always used; the same class.
InvoiceWindow = DateWindow
