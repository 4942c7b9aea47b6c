"""An XML export answer cut into its documents' bytes, without parsing it: what lets the frame step parse only
the documents that changed.

Why: an hourly run re-reads the trailing windows, and almost every document in them is one the warehouse already
holds, unchanged. Parsing a window to learn that cost as much as parsing it to store it. Cutting the bytes at
`<document>`/`</document>` (iiko's export documents are never nested and carry no comments or CDATA) gives each
document's exact bytes; their digest says whether the held row is current, and only the changed documents are
put back between the answer's own prolog and closing tag (so its declared encoding and namespaces still apply)
and handed to the real parser.

The cut is checked, not trusted: a document opened and never closed, a self-closing `<document/>`, or a count of
documents other than the raw step's own count on the same bytes makes the caller parse the whole answer as before.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from typing import BinaryIO

#: A document's opening tag (`<document>` or `<document attr=...>`; not `<documentNumber>`), its closing tag,
#: and the first `<id>` inside it (documents carry one, their lines none).
_OPENING = re.compile(rb"<document(?=[\s>/])")
_CLOSING = b"</document>"
DOCUMENT_ID = re.compile(rb"<id>\s*([^<\s]+)\s*</id>")

#: Bytes read at a time: a window's answer is never held whole.
_BLOCK = 1 << 22


class DocumentSplit:
    """Iterate over an answer's documents as bytes (`for piece in split`); afterwards `prefix` holds what came
    before the first document (the XML declaration and the root's opening tag), `suffix` what came after the last
    one (the root's closing tag), and `complete` whether every document was closed (and none self-closing)."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.prefix = b""
        self.suffix = b""
        self.complete = True
        self.count = 0

    def __iter__(self) -> Iterator[bytes]:
        text, position, started, ended = b"", 0, False, False
        while True:
            opening = _OPENING.search(text, position)
            if opening is not None:
                tag_end = text.find(b">", opening.end())
                if tag_end >= 0 and text[tag_end - 1:tag_end] == b"/":
                    self.complete = False  # a self-closing <document/>: left to the parser
                    return
                closing = text.find(_CLOSING, opening.end()) if tag_end >= 0 else -1
                if closing >= 0:
                    if not started:
                        self.prefix, started = text[:opening.start()], True
                    end = closing + len(_CLOSING)
                    self.count += 1
                    yield text[opening.start():end]
                    position = end
                    continue
            if ended:
                if opening is not None:
                    self.complete = False  # a document opened and never closed: a truncated answer
                if started:
                    self.suffix = text[position:]
                else:
                    self.prefix = text  # no documents at all
                return
            block = self._stream.read(_BLOCK)
            ended = not block
            if started:
                text, position = text[position:], 0
            text += block


def document_id(piece: bytes) -> str:
    """The document's id as the parser would read it (stripped, lower case), or "" when it has none."""
    found = DOCUMENT_ID.search(piece)
    return found.group(1).decode("utf-8", "replace").lower() if found else ""


def document_digest(piece: bytes, version: str) -> str:
    """A document's bytes and the adapter version that turns them into rows, hashed: equal digests mean the held
    row and lines already say what this document says."""
    return hashlib.blake2b(version.encode() + b":" + piece, digest_size=16).hexdigest()
