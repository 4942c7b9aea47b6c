"""Plain value objects returned by the client.

Why frozen dataclasses: they cross layer boundaries (adapters, Dagster metadata) and must not be mutated
on the way. ``IikoResponse`` keeps the raw bytes so that the caller chooses how to parse them (streaming
for exports, :func:`iiko_pipeline.iiko.xml.parse_document` for small answers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any


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

    def __repr__(self) -> str:
        return (
            f"IikoResponse(endpoint={self.endpoint!r}, status={self.status}, "
            f"content_type={self.content_type!r}, root={self.root!r}, body=<{len(self.body)} bytes>)"
        )


@dataclass(frozen=True)
class IikoJsonResponse:
    """A checked JSON list answer (the ``v2`` entity lists): 2xx, ``application/json``, an array of objects.

    ``body`` is the raw bytes as received (kept as the raw answer); ``items`` the decoded objects in the
    server's order, unknown fields kept, non-integral numbers as :class:`~decimal.Decimal` (exact, as sent).
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
class InvoiceWindow:
    """One inclusive date window of the incoming-invoice export and the answer for it."""

    date_from: date
    date_to: date
    response: IikoResponse
