"""XML/JSON shapes of the reference endpoints, transport details, and agreement with the truth."""

from __future__ import annotations

import requests
from emulator_helpers import TIMEOUT, Api, children, parse, sha1

XML_DECL = b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'


def test_departments_tree_with_jurpersons_and_stores(api: Api, token: str) -> None:
    r = api.get("corporation/departments", token)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/xml"
    assert r.content.startswith(XML_DECL)
    root = parse(r.content)
    assert root.tag == "corporateItemDtoes"
    assert {c.tag for c in root} == {"corporateItemDto"}
    recs = children(root)
    types = {rec["type"] for rec in recs}
    assert {"CORPORATION", "JURPERSON", "DEPARTMENT", "STORE"} <= types
    by_id = {rec["id"]: rec for rec in recs}
    truth = api.emu.state.dataset
    assert set(by_id) == {d.id for d in truth.departments()}
    assert [d.name for d in truth.restaurants()] == [rec["name"] for rec in recs if rec["type"] == "DEPARTMENT"]
    # Tree: restaurant -> legal entity -> corporation; the corporation has no parentId element.
    corp = next(rec for rec in recs if rec["type"] == "CORPORATION")
    assert "parentId" not in corp
    for rec in recs:
        if rec["type"] == "DEPARTMENT":
            assert by_id[rec["parentId"]]["type"] == "JURPERSON"
        if rec["type"] == "STORE":
            assert by_id[rec["parentId"]]["type"] == "DEPARTMENT"
    jur = next(el for el in root if el.findtext("type") == "JURPERSON")
    props = jur.find("jurPersonAdditionalPropertiesDto")
    assert props is not None
    assert props.findtext("taxpayerId") == jur.findtext("taxpayerIdNumber")
    assert len(props.findtext("accountingReasonCode") or "") == 9
    # Empty codes are self-closing tags; element order differs between items.
    assert b"<code/>" in r.content
    assert len({tuple(c.tag for c in el) for el in root}) > 1


def test_stores_and_search(api: Api, token: str) -> None:
    root = parse(api.get("corporation/stores/", token).content)  # trailing slash accepted
    assert root.tag == "corporateItemDtoes"
    recs = children(root)
    assert {rec["type"] for rec in recs} == {"STORE"}
    restaurants = {d.id for d in api.emu.state.dataset.restaurants()}
    assert all(rec["parentId"] in restaurants for rec in recs)
    assert len(recs) == 4  # tiny: 2 restaurants x 2 stores

    found = children(parse(api.get("corporation/departments/search", token, code="^00").content))
    assert {rec["code"] for rec in found} == {"001", "002"}
    assert {rec["type"] for rec in found} == {"DEPARTMENT"}
    assert parse(api.get("corporation/departments/search", token, code="^999$").content).tag == "corporateItemDtoes"
    store_codes = [s.code for s in api.emu.state.dataset.stores() if s.code]
    found = children(parse(api.get("corporation/stores/search", token, code=".").content))
    assert sorted(rec["code"] for rec in found) == sorted(store_codes)


def test_suppliers_shape(api: Api, token: str) -> None:
    r = api.get("suppliers", token)
    root = parse(r.content)
    assert root.tag == "employees"
    assert {c.tag for c in root} == {"employee"}
    recs = children(root)
    assert len(recs) == 12
    # The nested boolean <employee> flag: `.//employee` over-matches, direct children do not.
    assert len(root.findall(".//employee")) == 24
    assert all(rec["employee"] in ("true", "false") for rec in recs)
    assert any(rec["employee"] == "true" for rec in recs)
    assert sum(rec["deleted"] == "true" for rec in recs) == 1
    internal = [rec for rec in recs if rec.get("representsStore") == "true"]
    assert len(internal) == 2
    stores = {s.id: s for s in api.emu.state.dataset.stores()}
    for rec in internal:
        store = stores[rec["representedStoreId"]]
        assert rec["name"].endswith(f": {store.name}")
    assert any(rec["code"] is None for rec in recs), "some <code/> are empty"
    assert any((rec.get("note") or "").startswith("КПП: ") for rec in recs)
    truth = {s.id: s for s in api.emu.state.dataset.suppliers()}
    assert {rec["id"]: rec["name"] for rec in recs} == {k: s.name for k, s in truth.items()}


def test_supplier_names_with_quotes_and_ampersands_are_escaped(api: Api, token: str) -> None:
    name = 'ООО "Молоко & Сыр" «Север» <опт>'
    api.emu.state.add_supplier(name=name)
    r = api.get("suppliers", token)
    assert "Молоко &amp; Сыр".encode() in r.content
    assert "&lt;опт&gt;".encode() in r.content
    assert name in {rec["name"] for rec in children(parse(r.content))}


def test_accounts_list_json(api: Api, token: str) -> None:
    store = api.emu.state.dataset.stores()[0]
    api.emu.state.edit_store(store.id, deleted=True)
    for path in ("v2/entities/accounts/list", "entities/accounts/list"):
        r = api.get(path, token)
        assert r.headers["Content-Type"] == "application/json"
        data = r.json()
        assets = [a for a in data if a["type"] == "INVENTORY_ASSETS"]
        assert store.id not in {a["id"] for a in assets}
        assert all(a["parentCorporateId"] for a in assets)
    data = api.get("v2/entities/accounts/list", token, includeDeleted="true").json()
    deleted = {a["id"]: a for a in data if a["deleted"]}
    assert deleted[store.id]["type"] == "INVENTORY_ASSETS"
    assert deleted[store.id]["parentCorporateId"] == store.parent_id
    # The deleted store stays in corporation/stores: that endpoint has no deleted flag.
    assert store.id in {rec["id"] for rec in children(parse(api.get("corporation/stores", token).content))}


def test_neighbour_endpoints(api: Api, token: str) -> None:
    assert parse(api.get("replication/serverType", token).content).text == "CHAIN"
    assert api.get("v2/corporation/settings", token).json() == {"vatAccounting": "VAT_INCLUDED_IN_PRICE"}
    units = api.get("v2/entities/list", token, rootType="MeasureUnit").json()
    assert {u["name"] for u in units} >= {"кг", "л", "шт"}
    lic = parse(api.get("licence/info", moduleId="28008806").content)
    assert lic.findtext("freeSeats") == "0"  # the `token` fixture holds the only seat


def test_transport_headers_gzip_and_404(api: Api, token: str) -> None:
    r = api.get("suppliers", token)
    assert r.headers["Server"] == "Apache-Coyote/1.1"
    assert r.headers["Content-Encoding"] == "gzip"  # requests sends Accept-Encoding: gzip
    raw = requests.get(api.url("suppliers"), params={"key": token}, headers={"Accept-Encoding": "identity"},
                       timeout=TIMEOUT)
    assert "Content-Encoding" not in raw.headers
    assert raw.content == r.content
    assert int(raw.headers["Content-Length"]) == len(raw.content)

    api.emu.state.configure(charset_in_content_type=True)
    assert api.get("suppliers", token).headers["Content-Type"] == "application/xml;charset=UTF-8"

    for path in ("/resto/api/nope", "/resto/api/corporation/nothing", "/elsewhere"):
        r = requests.get(api.base + path, params={"key": token}, timeout=TIMEOUT)
        assert r.status_code == 404
        assert r.headers["Content-Type"].startswith("text/plain")
    r = requests.post(api.url("suppliers"), params={"key": token}, timeout=TIMEOUT)
    assert r.status_code == 405


def test_keep_alive_session_reuses_one_connection(api: Api) -> None:
    with requests.Session() as s:
        tok = s.get(api.url("auth"), params={"login": api.login_name, "pass": sha1(api.password)},
                    timeout=TIMEOUT).text
        for path in ("corporation/departments", "corporation/stores", "suppliers", "corporation/stores"):
            assert s.get(api.url(path), params={"key": tok}, timeout=TIMEOUT).status_code == 200
        assert s.get(api.url("logout"), params={"key": tok}, timeout=TIMEOUT).status_code == 200
