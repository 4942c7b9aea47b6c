"""The hardened parser, document checks and xml_to_dict (pure, no HTTP)."""

from __future__ import annotations

import pytest
from iiko_samples import SERVER_INFO, SUPPLIERS
from lxml import etree

from iiko_pipeline.iiko import xml_to_dict
from iiko_pipeline.iiko.errors import IikoResponseError
from iiko_pipeline.iiko.xml import HARDENED_OPTIONS, check_document, hardened_parser, parse_document


def el(text: str) -> etree._Element:
    return etree.fromstring(text.encode(), hardened_parser())


class TestXmlToDict:
    def test_text_only_element_is_a_bare_string(self) -> None:
        assert xml_to_dict(el("<name>  Ресторан  </name>")) == "Ресторан"

    def test_empty_element_is_none(self) -> None:
        assert xml_to_dict(el("<code/>")) is None
        assert xml_to_dict(el("<code>   </code>")) is None

    def test_attributes_and_text(self) -> None:
        assert xml_to_dict(el('<a x="1" y="">t</a>')) == {"@x": "1", "@y": "", "#text": "t"}
        assert xml_to_dict(el('<a x="1"/>')) == {"@x": "1"}

    def test_children_and_repeated_children_as_lists(self) -> None:
        result = xml_to_dict(el("<r><a>1</a><b/><a>2</a><a><c>3</c></a></r>"))
        assert result == {"a": ["1", "2", {"c": "3"}], "b": None}

    def test_single_child_is_not_a_list(self) -> None:
        assert xml_to_dict(el("<r><a>1</a></r>")) == {"a": "1"}

    def test_comments_and_processing_instructions_are_ignored(self) -> None:
        assert xml_to_dict(el("<r><!-- c --><?pi x?><a>1</a></r>")) == {"a": "1"}

    def test_server_info_document(self) -> None:
        root = parse_document(SERVER_INFO, "get_server_info.jsp", "r")
        assert xml_to_dict(root)["edition"] == "chain"

    def test_nested_same_name_flag(self) -> None:
        root = parse_document(SUPPLIERS, "suppliers", "employees")
        records = xml_to_dict(root)["employee"]
        assert len(records) == 3
        assert records[0]["employee"] == "false"
        assert records[1]["roleCodes"] == ["SUP", "COOK"]


class TestParseDocument:
    def test_empty_body(self) -> None:
        with pytest.raises(IikoResponseError) as info:
            parse_document(b"  \n", "suppliers", "employees", status=200)
        err = info.value
        assert (err.endpoint, err.status, err.kind, err.transient) == ("suppliers", 200, "empty", True)
        assert "empty body" in str(err) and "<employees>" in str(err) and "HTTP 200" in str(err)

    def test_syntax_error_names_line_and_column(self) -> None:
        with pytest.raises(IikoResponseError) as info:
            parse_document(b"<employees>\n<employee><id>1</id>\n", "suppliers", "employees", status=200)
        text = str(info.value)
        assert info.value.kind == "syntax" and info.value.transient
        assert "suppliers" in text and "line 3" in text and "column" in text and "truncated" in text

    def test_unknown_root(self) -> None:
        with pytest.raises(IikoResponseError) as info:
            parse_document(b"<foo/>", "suppliers", "employees")
        assert "unknown root element <foo> where <employees> was expected" in str(info.value)
        assert info.value.kind == "root" and not info.value.transient

    def test_only_bytes(self) -> None:
        with pytest.raises(TypeError):
            parse_document("<r/>", "x", "r")  # type: ignore[arg-type]

    def test_declaration_decides_encoding(self) -> None:
        body = '<?xml version="1.0" encoding="windows-1251"?><r><name>Ресторан</name></r>'.encode("cp1251")
        assert xml_to_dict(parse_document(body, "x", "r")) == {"name": "Ресторан"}

    def test_utf8_bom(self) -> None:
        body = b"\xef\xbb\xbf" + SERVER_INFO
        assert xml_to_dict(parse_document(body, "x", "r"))["serverName"] == "Demo Chain"

    def test_cp1251_bytes_under_utf8_declaration_is_a_syntax_error(self) -> None:
        body = '<?xml version="1.0" encoding="UTF-8"?><r>Ресторан</r>'.encode("cp1251")
        with pytest.raises(IikoResponseError) as info:
            parse_document(body, "x", "r")
        assert info.value.kind == "syntax"


class TestHardening:
    XXE = (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">'
           b'<!ENTITY y "expanded">]><r><a>&x;</a><b>&y;</b></r>')

    def test_options_are_the_hardened_set(self) -> None:
        assert HARDENED_OPTIONS == {"resolve_entities": False, "no_network": True, "load_dtd": False,
                                    "huge_tree": False}

    def test_entities_are_not_resolved_by_the_tree_parser(self) -> None:
        root = parse_document(self.XXE, "x", "r")
        assert "root:" not in etree.tostring(root, encoding="unicode").replace("&x;", "")
        assert xml_to_dict(root) == {"a": None, "b": None}

    def test_entities_are_not_resolved_by_the_streaming_check(self) -> None:
        assert check_document(self.XXE, "x", "r", record_tag="a") == "r"

    def test_deep_nesting_is_refused(self) -> None:
        body = b"<r>" + b"<a>" * 300 + b"</a>" * 300 + b"</r>"
        with pytest.raises(IikoResponseError):
            parse_document(body, "x", "r")


class TestCheckDocument:
    def test_ok(self) -> None:
        assert check_document(SUPPLIERS, "suppliers", "employees", record_tag="employee") == "employees"

    def test_truncated(self) -> None:
        with pytest.raises(IikoResponseError) as info:
            check_document(SUPPLIERS[:-40], "suppliers", "employees", status=200, record_tag="employee")
        assert info.value.kind == "syntax" and info.value.status == 200

    def test_wrong_root_fails_before_the_full_pass(self) -> None:
        with pytest.raises(IikoResponseError) as info:
            check_document(b"<html><body>login</body>", "suppliers", "employees", record_tag="employee")
        assert info.value.kind == "root"

    def test_empty(self) -> None:
        with pytest.raises(IikoResponseError) as info:
            check_document(b"", "suppliers", "employees")
        assert info.value.kind == "empty"


_ENTITIES = "".join(f'<!ENTITY {n} "{("&" + p + ";") * 10}">' for p, n in zip("abcdef", "bcdefg", strict=True))
_LAUGHS = (f'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">{_ENTITIES}]>'
           "<corporateItemDtoes>&g;</corporateItemDtoes>").encode()


@pytest.mark.parametrize("body", [
    b"<corporateItemDtoes>" + b"<x>" * 300 + b"</x>" * 300 + b"</corporateItemDtoes>",  # too deep
    b"<corporateItemDtoes><name>" + b"x" * (11 * 1024 * 1024) + b"</name></corporateItemDtoes>",  # text too long
    _LAUGHS,  # entity amplification ("billion laughs")
], ids=["depth", "huge_text", "laughs"])
def test_the_parsers_safety_limits_are_bad_data_not_a_truncated_answer(body: bytes) -> None:
    """Retrying cannot help: the same bytes hit the same limit (a truncated answer, by contrast, may not)."""
    from iiko_pipeline.iiko.parsing import iter_corporate_items

    for attempt in (lambda: check_document(body, "corporation/stores", "corporateItemDtoes"),
                    lambda: list(iter_corporate_items(body, endpoint="corporation/stores"))):
        with pytest.raises(IikoResponseError) as info:
            attempt()
        assert info.value.kind == "limit" and not info.value.transient, str(info.value)
    with pytest.raises(IikoResponseError) as truncated:
        check_document(b"<corporateItemDtoes><corporateItemDto>", "corporation/stores", "corporateItemDtoes")
    assert truncated.value.kind == "syntax" and truncated.value.transient


def test_an_answer_the_caller_recognises_is_not_parsed_again_and_any_other_is():
    """`checked` recognises bytes that passed the document check before (a committed export answer), by their
    SHA-256: the check is left out for them, and only for them; the content type is checked either way."""
    import hashlib

    from iiko_pipeline.iiko.answers import xml_answer
    from iiko_pipeline.iiko.transport import RawAnswer

    cut = b"<?xml version='1.0' encoding='UTF-8'?><incomingInvoiceDtoes><document><id>1</id>"
    known = {hashlib.sha256(cut).hexdigest()}

    def answer(body: bytes, content_type: str = "application/xml") -> object:
        return xml_answer(RawAnswer(200, content_type, body, 0.1), endpoint="documents/export/incomingInvoice",
                          display="GET export", expected_root="incomingInvoiceDtoes", record_tag="document",
                          accepted={"application/xml"}, checked=known.__contains__)

    assert answer(cut).root == "incomingInvoiceDtoes"  # recognised: not parsed again
    with pytest.raises(IikoResponseError) as broken:
        answer(cut + b"<x>")  # any other body is checked
    assert broken.value.kind == "syntax"
    with pytest.raises(IikoResponseError) as wrong_type:
        answer(cut, "text/html")
    assert wrong_type.value.kind == "content_type"
