"""Cutting an export answer into its documents' bytes (`iiko_pipeline.documents`): exact pieces, the answer's
own prolog and closing tag, and every shape the cut cannot vouch for reported as incomplete."""

from __future__ import annotations

import io

import pytest

from iiko_pipeline import documents
from iiko_pipeline.iiko.parsing import iter_invoice_documents

DOC_A = (b'<document>\n  <documentNumber>A-1</documentNumber>\n  <id> 0A6F0A9E-0000-4000-8000-000000000001 </id>\n'
         b'  <items><item><num>1</num><sum>2.5</sum></item></items>\n</document>')
DOC_B = (b'<document kind="x"><items/><id>0a6f0a9e-0000-4000-8000-000000000002</id>'
         b'<comment>&lt;document&gt; ' + "накладная".encode("cp1251") + b'</comment></document>')
PROLOG = b'<?xml version="1.0" encoding="windows-1251"?>\n<incomingInvoiceDtoes>\n  '
CLOSING = b"\n</incomingInvoiceDtoes>\n"
ANSWER = PROLOG + DOC_A + b"\n  " + DOC_B + CLOSING


@pytest.fixture(params=[7, 64, 1 << 22], ids=["7-byte blocks", "64-byte blocks", "4 MB blocks"])
def block(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """Any read size cuts the same pieces: a tag split between two reads is carried over."""
    monkeypatch.setattr(documents, "_BLOCK", request.param)
    return request.param


def test_pieces_are_the_documents_bytes_between_the_answers_own_prolog_and_closing_tag(block: int) -> None:
    split = documents.DocumentSplit(io.BytesIO(ANSWER))
    assert list(split) == [DOC_A, DOC_B]
    assert split.complete and split.count == 2
    assert split.prefix == PROLOG and split.suffix == CLOSING
    rebuilt = list(iter_invoice_documents(split.prefix + DOC_B + split.suffix))  # the declared encoding still holds
    assert [(r["id"], r["comment"]) for r in rebuilt] == [("0a6f0a9e-0000-4000-8000-000000000002",
                                                           "<document> накладная")]


def test_ids_and_digests() -> None:
    assert documents.document_id(DOC_A) == "0a6f0a9e-0000-4000-8000-000000000001"
    assert documents.document_id(b"<document><items/></document>") == ""
    assert documents.document_digest(DOC_A, "1") == documents.document_digest(bytes(DOC_A), "1")
    assert documents.document_digest(DOC_A, "1") != documents.document_digest(DOC_A, "2")  # the adapter's version
    assert documents.document_digest(DOC_A, "1") != documents.document_digest(DOC_A.replace(b"2.5", b"2.6"), "1")


@pytest.mark.parametrize("answer", [
    PROLOG + DOC_A + b"\n  <document><id>x</id><items>",  # cut short inside a document
    PROLOG + DOC_A + b"<document/>" + CLOSING,  # self-closing
    PROLOG + b'<document kind="empty" />' + CLOSING,
], ids=["truncated", "self-closing", "self-closing with attributes"])
def test_shapes_the_cut_cannot_vouch_for_are_incomplete(answer: bytes, block: int) -> None:
    split = documents.DocumentSplit(io.BytesIO(answer))
    list(split)
    assert not split.complete


def test_an_answer_without_documents() -> None:
    empty = b'<?xml version="1.0" encoding="UTF-8"?>\n<incomingInvoiceDtoes/>\n'
    split = documents.DocumentSplit(io.BytesIO(empty))
    assert list(split) == [] and split.complete and split.count == 0 and split.prefix == empty
