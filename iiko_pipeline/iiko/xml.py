"""Hardened XML parsing from bytes, document checks and the general ``xml_to_dict`` helper.

Why hardened: iiko answers pass through proxies we do not control, and lxml's ``iterparse`` resolved
external entities by default until 6.1 (CVE-2026-41066). Every parse here passes the options explicitly, so
no future default can weaken it. Why bytes: the XML declaration must decide the encoding; ``requests``'
``.text`` guesses and produces mojibake for ``application/xml`` without a charset.
"""

from __future__ import annotations

from collections.abc import Callable
from io import BytesIO
from typing import IO, Any

from lxml import etree

from .errors import IikoResponseError

#: The parser options used for every iiko response (XMLParser and iterparse alike).
HARDENED_OPTIONS: dict[str, bool] = {
    "resolve_entities": False,  # no entity expansion (XXE, billion laughs)
    "no_network": True,  # never fetch anything referenced by the document
    "load_dtd": False,  # ignore DTDs
    "huge_tree": False,  # keep libxml2's size and depth limits
}


def hardened_parser() -> etree.XMLParser:
    """A new parser with :data:`HARDENED_OPTIONS` (a new one per call: lxml parsers are not shareable
    between threads while in use)."""
    return etree.XMLParser(**HARDENED_OPTIONS)


def _where(endpoint: str, status: int | None) -> dict[str, Any]:
    return {"endpoint": endpoint, "status": status}


#: libxml2's XML_ERR_RESOURCE_LIMIT: too deep, a text node too long, entity amplification (an XML bomb).
_RESOURCE_LIMIT = 114
_LIMIT_MARKERS = ("xml_parse_huge", "resource limit", "amplification", "entity reference loop")


def hit_a_limit(exc: etree.XMLSyntaxError) -> bool:
    """Whether the parser stopped at one of its safety limits: the same bytes will stop it again, so unlike a
    truncated answer this is not worth a retry."""
    return exc.code == _RESOURCE_LIMIT or any(m in (exc.msg or "").lower() for m in _LIMIT_MARKERS)


def limit_error(exc: etree.XMLSyntaxError, endpoint: str, status: int | None) -> IikoResponseError:
    return IikoResponseError(
        f"the XML answer exceeds the parser's safety limits ({exc.msg.split(',')[0]}): too deep, a text too "
        "long, or entity expansion; iiko does not answer like this, so it is refused and not retried",
        kind="limit", **_where(endpoint, status))


def _syntax_error(exc: etree.XMLSyntaxError, endpoint: str, status: int | None, expected_root: str,
                  size: int) -> IikoResponseError:
    if hit_a_limit(exc):
        return limit_error(exc, endpoint, status)
    line, column = exc.position if exc.position else (exc.lineno, exc.offset)
    return IikoResponseError(
        f"the XML answer ({size} bytes, expected root <{expected_root}>) is malformed or truncated at "
        f"line {line}, column {column}: {exc.msg}. A proxy or the server cut the answer short or broke it; "
        "retry later, and check the proxy or the server log if it persists",
        kind="syntax",
        **_where(endpoint, status),
    )


def _empty_error(endpoint: str, status: int | None, expected_root: str) -> IikoResponseError:
    return IikoResponseError(
        f"the answer has an empty body where an XML document <{expected_root}> was expected; "
        "retry later, and check the proxy if it persists",
        kind="empty",
        **_where(endpoint, status),
    )


def _root_error(tag: str, endpoint: str, status: int | None, expected_root: str) -> IikoResponseError:
    return IikoResponseError(
        f"unknown root element <{tag}> where <{expected_root}> was expected: the server answered with a "
        "different document; check the base URL and the server version",
        kind="root",
        **_where(endpoint, status),
    )


def _local(tag: Any) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) and tag.startswith("{") else str(tag)


def parse_document(body: bytes, endpoint: str, expected_root: str, *, status: int | None = None
                   ) -> etree._Element:
    """Parse a whole (small) XML answer into a tree and check its root element.

    Raises :class:`IikoResponseError` naming the endpoint, the status and what went wrong: an empty body, a
    syntax error with line and column, or an unknown root element. Use the streaming parsers in
    :mod:`iiko_pipeline.iiko.parsing` for large answers.
    """
    if not isinstance(body, bytes | bytearray | memoryview):
        raise TypeError("parse_document() takes bytes: let the XML declaration decide the encoding")
    body = bytes(body)
    if not body.strip():
        raise _empty_error(endpoint, status, expected_root)
    try:
        root = etree.fromstring(body, hardened_parser())
    except etree.XMLSyntaxError as exc:
        error = _syntax_error(exc, endpoint, status, expected_root, len(body))
    else:
        if _local(root.tag) != expected_root:
            raise _root_error(_local(root.tag), endpoint, status, expected_root)
        return root
    raise error  # raised outside the except block: no exception context to carry along


def check_document(body: bytes, endpoint: str, expected_root: str, *, status: int | None = None,
                   record_tag: str | None = None) -> str:
    """Check that ``body`` is a complete, well-formed XML document with root ``expected_root``.

    Streams through the document with constant memory (see :func:`check_document_stream`). Returns the root
    tag; raises :class:`IikoResponseError` otherwise (``kind`` ``"syntax"``/``"empty"`` are transient,
    ``"root"`` is not).
    """
    return check_document_stream(lambda: BytesIO(body), len(body), not body.strip(), endpoint, expected_root,
                                 status=status, record_tag=record_tag)


def check_document_stream(open_body: Callable[[], IO[bytes]], size: int, blank: bool, endpoint: str,
                          expected_root: str, *, status: int | None = None, record_tag: str | None = None) -> str:
    """:func:`check_document` for a body read from a stream (``open_body`` opens it afresh, twice): an export
    window kept on disk as it arrived is checked without ever being held in memory. ``blank``: the body holds
    nothing but whitespace.

    Only ``record_tag`` elements produce Python events, and each is cleared right away. The root is checked from
    the first chunk before the full pass, so a wrong document fails fast.
    """
    if blank:
        raise _empty_error(endpoint, status, expected_root)
    error: IikoResponseError | None = None
    try:
        with open_body() as stream:
            for _event, element in etree.iterparse(stream, events=("start",), **HARDENED_OPTIONS):
                tag = _local(element.tag)
                if tag != expected_root:
                    raise _root_error(tag, endpoint, status, expected_root)
                break
        with open_body() as stream:
            events = etree.iterparse(stream, events=("end",), tag=record_tag or expected_root,
                                     **HARDENED_OPTIONS)
            for _event, element in events:
                element.clear(keep_tail=False)
                parent = element.getparent()
                if parent is not None:
                    while element.getprevious() is not None:
                        del parent[0]
    except etree.XMLSyntaxError as exc:
        error = _syntax_error(exc, endpoint, status, expected_root, size)
    if error is not None:
        raise error
    return expected_root


def _has_element_children(element: etree._Element) -> bool:
    return any(isinstance(child.tag, str) for child in element)


def xml_to_dict(element: etree._Element) -> Any:
    """Convert an element to plain Python data, for ad-hoc inspection and small documents.

    Rules (the product brief's helper): attributes become ``"@name"`` keys; text becomes ``"#text"``, or
    the element is just the stripped string when it has only text; children become keys, and a child tag
    that repeats becomes a list; an element with no attributes, no text and no children is ``None``.
    Comments, processing instructions and unresolved entities are ignored. Not for large exports: it builds
    the whole structure in memory (use :mod:`iiko_pipeline.iiko.parsing` there).
    """
    result: dict[str, Any] = {}
    for name, value in element.items():
        result[f"@{_local(name)}"] = value
    text = (element.text or "").strip()
    if _has_element_children(element):
        for child in element:
            if not isinstance(child.tag, str):
                continue
            key = _local(child.tag)
            value = xml_to_dict(child)
            if key not in result:
                result[key] = value
            elif isinstance(result[key], list):  # child values are never lists themselves
                result[key].append(value)
            else:
                result[key] = [result[key], value]
        if text:
            result["#text"] = text
        return result
    if text:
        if not result:
            return text
        result["#text"] = text
    return result or None

