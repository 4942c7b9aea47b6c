"""Export windows stream to the raw store as they arrive (issue 16 item 2): the client writes the body to a
`RawSpool` instead of memory, checks it read back from there, and a failed or refused attempt leaves no file.
The stored answer is byte for byte the one a plain request gets. Real HTTP against the emulator."""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Callable
from datetime import date, timedelta
from functools import partial
from pathlib import Path
from typing import BinaryIO

import pytest
from iiko_helpers import Control

from iiko_pipeline.iiko import IikoClient
from iiko_pipeline.iiko.errors import IikoResponseError
from iiko_pipeline.iiko.xml import check_document_stream
from iiko_pipeline.rawstore import RawSpool, count_documents, write_raw

MakeClient = Callable[..., IikoClient]
EXPORT = "documents/export/incomingInvoice"
WEEK = (date.today() - timedelta(days=40), date.today() - timedelta(days=34))


def _spool_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.part"))


def _stored(path: str) -> bytes:
    with gzip.open(path, "rb") as stream:
        return stream.read()


def test_a_streamed_window_is_stored_byte_for_byte_and_never_held_in_memory(make_client: MakeClient,
                                                                             tmp_path: Path) -> None:
    with make_client() as client:
        plain = client.incoming_invoices_window(*WEEK)
        streamed = client.incoming_invoices_window(*WEEK, sink=partial(RawSpool, tmp_path / "raw", "acc",
                                                                       "invoices"))
    assert streamed.body == b"" and streamed.root == "incomingInvoiceDtoes"
    part = streamed.sink.keep("week")
    assert _stored(part.path) == plain.body
    expected = write_raw(tmp_path / "direct", "acc", "invoices", "week", plain.body, count_documents(plain.body))
    assert (part.size, part.sha256, part.records) == (expected.size, expected.sha256, expected.records)
    assert part.records > 0 and Path(part.path).name == Path(expected.path).name
    assert _spool_files(tmp_path) == []


@pytest.mark.parametrize("kind", ["truncated", "malformed"])
def test_a_broken_streamed_answer_is_retried_and_leaves_no_partial_file(kind: str, make_client: MakeClient,
                                                                        control: Control, tmp_path: Path) -> None:
    control.fault(EXPORT, kind, count=1)
    with make_client() as client:
        streamed = client.incoming_invoices_window(*WEEK, sink=partial(RawSpool, tmp_path, "acc", "invoices"))
        plain = client.incoming_invoices_window(*WEEK)
    assert [r["fault"] for r in control.requests(EXPORT)] == [kind, None, None]
    assert _spool_files(tmp_path) == [streamed.sink.path]  # only the good attempt's, until it is kept
    assert _stored(streamed.sink.keep("week").path) == plain.body
    assert _spool_files(tmp_path) == []


def test_a_refused_streamed_answer_leaves_no_file(make_client: MakeClient, control: Control,
                                                  tmp_path: Path) -> None:
    control.fault(EXPORT, "wrong_content_type", count=1)
    with make_client() as client, pytest.raises(IikoResponseError) as refused:
        client.incoming_invoices_window(*WEEK, sink=partial(RawSpool, tmp_path, "acc", "invoices"))
    assert refused.value.kind == "content_type"
    assert list(tmp_path.rglob("*.gz*")) == []


def test_a_committed_answer_is_recognised_by_its_digest_without_a_second_parse(make_client: MakeClient,
                                                                               tmp_path: Path) -> None:
    """`checked` gets the spool's SHA-256; a recognised body skips the check, so even a spool whose read-back
    would fail is accepted (proof that it was not read), and an unrecognised one is checked."""
    with make_client() as client:
        known = hashlib.sha256(client.incoming_invoices_window(*WEEK).body).hexdigest()
        seen: list[str] = []

        class Unreadable(RawSpool):
            def open(self) -> BinaryIO:  # the check must not call it for a recognised answer
                raise AssertionError("a recognised answer was read back")

        def checked(digest: str) -> bool:
            seen.append(digest)
            return digest == known

        sink = partial(Unreadable, tmp_path, "acc", "invoices")
        assert client.incoming_invoices_window(*WEEK, checked=checked, sink=sink).sink.sha256 == known
        assert seen == [known]
        with pytest.raises(AssertionError, match="read back"):
            client.incoming_invoices_window(*WEEK, checked=lambda digest: False, sink=sink)


@pytest.mark.parametrize("piece", [1, 2, 3, 9, 10, 11, 17, 4096])
def test_the_spool_counts_documents_cut_between_pieces_once(piece: int, tmp_path: Path) -> None:
    body = (b"<?xml version='1.0'?><incomingInvoiceDtoes>"
            + b"".join(b"<document><id>%d</id></document>\n<document attr='x'><id>n</id></document>" % n
                       for n in range(40))
            + b"<documentNumber>not a document</documentNumber></incomingInvoiceDtoes>")
    spool = RawSpool(tmp_path, "acc", "invoices")
    for start in range(0, len(body), piece):
        spool.write(body[start:start + piece])
    spool.close()
    assert (spool.documents, spool.size, spool.blank) == (80, len(body), False)
    assert spool.sha256 == hashlib.sha256(body).hexdigest()
    assert check_document_stream(spool.open, spool.size, spool.blank, EXPORT, "incomingInvoiceDtoes",
                                 record_tag="document") == "incomingInvoiceDtoes"


def test_a_blank_spooled_body_is_an_empty_answer_and_a_cut_one_a_syntax_error(tmp_path: Path) -> None:
    blank = RawSpool(tmp_path, "acc", "invoices")
    for piece in (b"  ", b"\n\t", b" "):
        blank.write(piece)
    blank.close()
    with pytest.raises(IikoResponseError) as empty:
        check_document_stream(blank.open, blank.size, blank.blank, EXPORT, "incomingInvoiceDtoes")
    assert empty.value.kind == "empty" and empty.value.transient
    cut = RawSpool(tmp_path, "acc", "invoices")
    cut.write(b"  <incomingInvoiceDtoes><document><id>1</id>")
    cut.close()
    with pytest.raises(IikoResponseError) as syntax:
        check_document_stream(cut.open, cut.size, cut.blank, EXPORT, "incomingInvoiceDtoes")
    assert syntax.value.kind == "syntax" and f"({cut.size} bytes" in str(syntax.value)
    blank.discard()
    cut.discard()
    assert _spool_files(tmp_path) == []


@pytest.mark.parametrize("block", [7, 20, 64, 1 << 22])
def test_an_unchanged_windows_ids_are_scanned_block_by_block_as_from_the_whole_body(
        block: int, make_client: MakeClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """The frame step reads an unchanged window's ids without holding it whole; ids cut between two blocks are
    found once, and none is lost, whatever the block size."""
    import io
    import re

    from iiko_pipeline import frames

    with make_client() as client:
        body = client.incoming_invoices_window(*WEEK).body
    whole = [m.decode().lower() for m in re.findall(rb"<id>\s*([^<\s]+)\s*</id>", body)]
    monkeypatch.setattr(frames, "_SCAN_BLOCK", block)
    monkeypatch.setattr(frames, "_SCAN_CARRY", 64)
    assert len(whole) == count_documents(body) > 0
    assert frames.document_ids(io.BytesIO(body)) == whole


def test_a_killed_syncs_unfinished_raw_files_are_swept_once_old(tmp_path: Path) -> None:
    """A spool or a `write_raw` temp file left by a killed process is deleted by the next raw step once it is an
    hour old (a younger one may be another run's, being written); stored answers are never touched."""
    import os
    import time

    from iiko_pipeline.rawstore import sweep_leftovers

    folder = tmp_path / "acc" / "invoices"
    folder.mkdir(parents=True)
    old = time.time() - 7200
    names = {"stale_spool": ".ab12.xml.gz.part", "stale_tmp": "cd34.xml.tmp", "fresh_spool": ".ef56.xml.gz.part",
             "stored": "0123.xml.gz"}
    for key, name in names.items():
        (folder / name).write_bytes(b"x")
        if key != "fresh_spool":
            os.utime(folder / name, (old, old))
    assert sweep_leftovers(tmp_path, "acc", "invoices") == 2
    assert sorted(p.name for p in folder.iterdir()) == sorted([names["fresh_spool"], names["stored"]])
    assert sweep_leftovers(tmp_path, "other", "invoices") == 0  # no folder yet: nothing to do
