"""Issue 14, emulator slice: products, product groups, measure units and employees, over real HTTP.

Also pins digests of the data that existed before (suppliers, corporate tree, catalogue, invoices): the new
entities come from RNG streams of their own and must not have changed a byte of it.
"""

from __future__ import annotations

import hashlib
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
import requests
from emulator_helpers import TIMEOUT, Api, documents, parse
from Pyiiko import IikoServer

from iiko_pipeline.emulator import EmulatorConfig, EmulatorServer, render
from iiko_pipeline.emulator.dataset import Dataset
from tests.conftest import EMULATOR_LOGIN, EMULATOR_PASSWORD

TODAY = date(2024, 6, 30)
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
PRODUCTS = "v2/entities/products/list"
GROUPS = "v2/entities/products/group/list"
PRODUCT_KEYS = {
    "id", "deleted", "name", "description", "num", "code", "parent", "type", "mainUnit", "category",
    "accountingCategory", "taxCategory", "defaultSalePrice", "unitWeight", "unitCapacity", "notInStoreMovement",
    "containers", "barcodes", "modifiers", "frontImageId", "color", "fontColor", "frontFontSize",
    "defaultIncludedInMenu",
}
GROUP_KEYS = {"id", "deleted", "name", "num", "code", "description", "parent", "visibilityFilter", "modifiers"}


# ------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def seed_emu() -> Iterator[EmulatorServer]:
    """One `seed`-scale emulator for the read-only checks of this module."""
    cfg = EmulatorConfig(host="127.0.0.1", port=0, login=EMULATOR_LOGIN, password=EMULATOR_PASSWORD, seed=1,
                         scale="seed", seats=5, today=TODAY)
    with EmulatorServer(cfg) as emu:
        yield emu


@pytest.fixture
def seed_api(seed_emu: EmulatorServer) -> Iterator[tuple[Api, str]]:
    api = Api(seed_emu)
    tok = api.login()
    yield api, tok
    api.logout(tok)


def _json(api: Api, path: str, tok: str, **params: Any) -> Any:
    r = api.get(path, tok, **params)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/json"
    return r.json()


def _employees(api: Api, tok: str, **params: Any) -> list[ET.Element]:
    r = api.get("employees", tok, **params)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/xml"
    root = parse(r.content)
    assert root.tag == "employees"
    return list(root)


def _values(el: ET.Element, tag: str) -> list[str]:
    """Texts of the record's direct children named `tag` (repeated elements such as roleCodes)."""
    return [c.text or "" for c in el if c.tag == tag]


def _one(el: ET.Element, tag: str) -> str | None:
    values = _values(el, tag)
    assert len(values) <= 1, (tag, values)
    return values[0] if values else None


# ------------------------------------------------------------------ the existing data is untouched

# Computed with the emulator as it was before issue 14 (seed 1, today 2024-06-30, the functions below).
DIGESTS = {
    "seed": {
        "suppliers": "9a424ec14bbb3242801b78b2ddb2c93c3bac035971c187eb87c7bc121a273d34",
        "departments": "a325ece4cb30df4c2ab9ffd1f49375350054dcd7dc70b949d2d058128cb5d742",
        "catalogue": "6cb321c1d745b954abaa58edc94ff0df6863070cedeaae398398535fd881fbe3",
        "units": "75285dd6b280eaf29c9ee5584f5adf68840f59523a4db20f864b8f3fa791f237",
        "accounts": "bbf82f87e674ea741a6d4900c18cd6fd40cd51f89509b494ada1140eb87b3fcd",
        "invoices": "7941a197efaec8165df5b222bf431f63827520ab432cd3d7e25f67b39877dd21",
    },
    "tiny": {
        "suppliers": "c62850c6ec04af002b02d753c1faa0047157d97e0c4a7badd64d0ec33caebc45",
        "departments": "d63c51bbfc8598bdf9cc0b8e760c6fd484277d3880eaa58dfdb703ce03a784b1",
        "catalogue": "998e773e169b9f0c73318ba79b42c788ec2551c0d5ec5fb3ae41efd9a0010c91",
        "units": "5d7ec7554d3ba6ab4d812f9d05082f5f1980e44472de57a97a99a46432af561c",
        "accounts": "bfe2c8b8d8fc831c445812b601b7151322da4340bc3f7d814a8c2d16af3d2dd9",
        "invoices": "db1160beaea5d95d287f80035e91a200a1179cc54f31d900079466128e68bb17",
    },
}
WINDOWS = {"seed": (date(2024, 6, 28), TODAY), "tiny": (date(2024, 5, 1), TODAY)}


def fingerprints(dataset_cls: Any, render_mod: Any, scale: str) -> dict[str, str]:
    """sha256 of what a client saw before issue 14 (the same function computed `DIGESTS`)."""
    ds = dataset_cls(1, scale, today=lambda: TODAY, history_days=lambda: 400)

    def h(data: str | bytes) -> str:
        return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()

    catalogue = [(p.id, p.article, p.code, p.name, p.unit_id, p.unit_kind, p.vat_percent, p.base_price_cents)
                 for p in [*ds.universe.products, ds.universe.delivery]]
    d_from, d_to = WINDOWS[scale]
    return {
        "suppliers": h(render_mod.suppliers(ds.suppliers())),
        "departments": h(render_mod.corporate_items(ds.departments())),
        "catalogue": h(repr(catalogue)),
        "units": h(repr([(u.id, u.root_type, u.code, u.name, u.deleted) for u in ds.universe.units])),
        "accounts": h(render_mod.accounts_list(ds.seed, ds.scale.name, ds.stores(), True)),
        "invoices": h("".join(render_mod.invoice_export(ds.iter_invoice_days(d_from, d_to),
                                                        render_mod.RenderOptions()))),
    }


@pytest.mark.parametrize("scale", ["tiny", "seed"])
def test_existing_data_is_byte_for_byte_unchanged(scale: str) -> None:
    assert fingerprints(Dataset, render, scale) == DIGESTS[scale]


def test_nomenclature_is_deterministic_and_seeded() -> None:
    def snapshot(seed: int) -> tuple[bytes, bytes, str]:
        ds = Dataset(seed, "tiny", today=lambda: TODAY, history_days=lambda: 30)
        return (render.nomenclature_items(ds.nomenclature_items(), (9,)), render.product_groups(ds.product_groups()),
                render.employees(ds.employees(), render.RenderOptions()))

    assert snapshot(3) == snapshot(3)
    assert snapshot(3) != snapshot(4)


@pytest.mark.parametrize(("scale", "groups", "products", "employees"),
                         [("tiny", (8, 16), (40, 80), (8, 14)), ("seed", (130, 170), (2000, 3500), (70, 90)),
                          ("large", (250, 400), (3000, 5000), (250, 400))])
def test_sizes_per_scale(scale: str, groups: tuple[int, int], products: tuple[int, int],
                         employees: tuple[int, int]) -> None:
    ds = Dataset(1, scale, today=lambda: TODAY, history_days=lambda: 1)
    assert groups[0] <= len(ds.product_groups()) <= groups[1]
    assert products[0] <= len(ds.nomenclature_items()) <= products[1]
    assert employees[0] <= len(ds.employees()) <= employees[1]


# ------------------------------------------------------------------ products

def test_products_shape_types_and_quirks(seed_api: tuple[Api, str]) -> None:
    api, tok = seed_api
    r = api.get(PRODUCTS, tok)
    assert r.headers["Content-Encoding"] == "gzip"  # a big JSON answer is compressed like the XML ones
    products = r.json()
    assert isinstance(products, list) and len(products) > 2000
    for p in products:
        assert set(p) >= PRODUCT_KEYS, PRODUCT_KEYS - set(p)
        assert "defaultIncludeInMenu" not in p  # the docs' field table spelling is not what the JSON says
        assert UUID.match(p["id"]) and UUID.match(p["mainUnit"])
        assert p["deleted"] is False  # includeDeleted defaults to false
        assert isinstance(p["name"], str) and p["name"]
        assert p["description"] is None or isinstance(p["description"], str)
        assert isinstance(p["num"], str) and (p["code"] is None or isinstance(p["code"], str))
        assert p["parent"] is None or UUID.match(p["parent"])
        for key in ("defaultSalePrice", "unitWeight", "unitCapacity"):
            assert isinstance(p[key], int | float) and not isinstance(p[key], bool), (key, p[key])
        assert isinstance(p["notInStoreMovement"], bool) and isinstance(p["defaultIncludedInMenu"], bool)
        assert p["category"] is None and p["frontImageId"] is None and p["modifiers"] == []
        assert isinstance(p["containers"], list) and isinstance(p["barcodes"], list)
        assert set(p["color"]) == {"red", "green", "blue"} and isinstance(p["frontFontSize"], int)
    types = {p["type"] for p in products}
    assert {"GOODS", "DISH", "PREPARED", "SERVICE", "MODIFIER"} <= types
    assert types <= {"GOODS", "DISH", "PREPARED", "SERVICE", "MODIFIER", "OUTER", "RATE"}
    assert sum(p["type"] == "GOODS" for p in products) >= 1200
    assert any(p["description"] is None for p in products) and any(p["taxCategory"] is None for p in products)
    assert any(p["parent"] is None for p in products), "a few items sit at the top level"
    with_containers = [p for p in products if p["containers"]]
    assert with_containers
    c = with_containers[0]["containers"][0]
    assert {"id", "num", "name", "count"} <= set(c) and isinstance(c["count"], int | float)
    barcoded = [p for p in products if p["barcodes"]]
    assert barcoded and all(re.fullmatch(r"\d{13}", b["barcode"]) for p in barcoded for b in p["barcodes"])
    # The catalogue's delivery line (a service, unit "усл") is a product like any other.
    delivery = api.emu.state.dataset.universe.delivery
    assert next(p for p in products if p["id"] == delivery.id)["type"] == "SERVICE"


def test_include_deleted_and_filters(seed_api: tuple[Api, str]) -> None:
    api, tok = seed_api
    live = _json(api, PRODUCTS, tok)
    everything = _json(api, PRODUCTS, tok, includeDeleted="true")
    assert _json(api, PRODUCTS, tok, includeDeleted="false") == live
    deleted = [p for p in everything if p["deleted"]]
    assert deleted and len(everything) == len(live) + len(deleted)
    assert {p["id"] for p in live} == {p["id"] for p in everything if not p["deleted"]}

    a, b = live[0]["id"], live[5]["id"]
    assert [p["id"] for p in _json(api, PRODUCTS, tok, ids=[a, b])] == [a, b]  # repeated parameter
    assert [p["id"] for p in _json(api, PRODUCTS, tok, ids=f"{a},{b.upper()}")] == [a, b]  # comma list
    assert _json(api, PRODUCTS, tok, ids=deleted[0]["id"]) == []
    assert [p["id"] for p in _json(api, PRODUCTS, tok, ids=deleted[0]["id"], includeDeleted="true")] == \
        [deleted[0]["id"]]
    dishes = _json(api, PRODUCTS, tok, types="DISH")
    assert dishes and {p["type"] for p in dishes} == {"DISH"}
    both = _json(api, PRODUCTS, tok, types=["DISH", "SERVICE"])
    assert {p["type"] for p in both} == {"DISH", "SERVICE"}
    parent = next(p["parent"] for p in live if p["parent"])
    children = _json(api, PRODUCTS, tok, parentIds=parent)
    assert children and {p["parent"] for p in children} == {parent}
    assert [p["id"] for p in _json(api, PRODUCTS, tok, nums=live[3]["num"])] == [live[3]["id"]]


def test_every_reference_resolves(seed_api: tuple[Api, str]) -> None:
    api, tok = seed_api
    products = _json(api, PRODUCTS, tok, includeDeleted="true")
    groups = {g["id"]: g for g in _json(api, GROUPS, tok, includeDeleted="true")}
    live_groups = {g["id"] for g in _json(api, GROUPS, tok)}
    units = {u["id"] for u in _json(api, "v2/entities/list", tok, rootType="MeasureUnit")}
    accounting = {c["id"] for c in _json(api, "v2/entities/list", tok, rootType="AccountingCategory")}
    taxes = _json(api, "v2/entities/list", tok, rootType="TaxCategory")
    assert all(isinstance(t["vatPercent"], int) for t in taxes)
    for p in products:
        assert p["parent"] is None or p["parent"] in groups, p
        if not p["deleted"]:
            assert p["parent"] is None or p["parent"] in live_groups, "a live product hangs under a live group"
        assert p["mainUnit"] in units, p
        assert p["accountingCategory"] in accounting
        assert p["taxCategory"] is None or p["taxCategory"] in {t["id"] for t in taxes}


def _check_invoice_lines(api: Api, tok: str, days: int) -> list[dict[str, Any]]:
    products = {p["id"]: p for p in _json(api, PRODUCTS, tok, includeDeleted="true")}
    export = api.invoices(tok, (TODAY - timedelta(days=days - 1)).isoformat(), TODAY.isoformat())
    lines = [item for doc in documents(parse(export.content)) for item in doc["items"]]
    assert len(lines) > 50
    for item in lines:
        product = products[item["product"]]
        assert product["mainUnit"] == item["amountUnit"]
        assert product["num"] == item["productArticle"]
    assert api.emu.state.dataset.universe.delivery.id in products
    return lines


def test_every_invoice_line_resolves_to_a_product_tiny(make_emulator: Any) -> None:
    with make_emulator(seed=1, today=TODAY) as emu:
        api = Api(emu)
        tok = api.login()
        _check_invoice_lines(api, tok, days=60)
        api.logout(tok)


def test_every_invoice_line_resolves_to_a_product_seed(seed_api: tuple[Api, str]) -> None:
    api, tok = seed_api
    lines = _check_invoice_lines(api, tok, days=2)
    delivery = api.emu.state.dataset.universe.delivery.id
    assert any(item["product"] == delivery for item in lines), "the delivery line appears in invoices"


def test_old_versions(api: Api, token: str) -> None:
    state = api.emu.state
    state.configure(version="6.0.0")
    for path in (PRODUCTS, GROUPS):
        r = api.get(path, token)
        assert r.status_code == 404 and r.headers["Content-Type"].startswith("text/plain")
        assert r.text == requests.get(api.url("no/such/thing"), timeout=TIMEOUT).text.replace(
            "no/such/thing", path)
    assert api.get("employees", token).status_code == 200
    assert state.log.summary()["by_endpoint"][PRODUCTS] == 1  # logged under its name

    state.configure(version="6.1.0")
    products = _json(api, PRODUCTS, token)
    assert all("containers" not in p and "barcodes" not in p for p in products)  # containers came in 6.2.4
    state.configure(version="6.2.4")
    assert all(isinstance(p["containers"], list) and "barcodes" not in p for p in _json(api, PRODUCTS, token))
    state.configure(version="8.7.0.100")
    assert all("barcodes" not in p for p in _json(api, PRODUCTS, token))
    state.configure(version="8.7.1")
    assert all(isinstance(p["barcodes"], list) for p in _json(api, PRODUCTS, token))


def test_permission_denied(api: Api, token: str) -> None:
    api.emu.state.configure(permission_denied=[PRODUCTS, GROUPS, "employees"])
    for path in (PRODUCTS, GROUPS, "employees"):
        r = api.get(path, token)
        assert (r.status_code, r.text) == (403, "Permission denied")
    assert api.get("suppliers", token).status_code == 200
    assert api.get(PRODUCTS, None).status_code == 401  # the token is checked first


def test_post_form_variant_with_revision(api: Api, token: str) -> None:
    state = api.emu.state
    target = state.dataset.nomenclature_items()[3]
    state.edit_product(target.id, name="Картофель «Молодой»")
    r = requests.post(api.url(PRODUCTS), data={"key": token, "revisionFrom": "1"}, timeout=TIMEOUT)
    assert r.status_code == 200
    assert [(p["id"], p["name"]) for p in r.json()] == [(target.id, "Картофель «Молодой»")]
    r = requests.post(api.url(PRODUCTS), data={"key": token, "codes": target.code}, timeout=TIMEOUT)
    assert target.id in {p["id"] for p in r.json()}
    r = requests.post(api.url(PRODUCTS), data={"key": token, "revisionFrom": "x"}, timeout=TIMEOUT)
    assert r.status_code == 400


# ------------------------------------------------------------------ groups and units

def test_groups_tree(seed_api: tuple[Api, str]) -> None:
    api, tok = seed_api
    live = _json(api, GROUPS, tok)
    everything = _json(api, GROUPS, tok, includeDeleted="true")
    assert 140 <= len(everything) <= 160 and len(live) < len(everything)
    by_id = {g["id"]: g for g in everything}
    for g in everything:
        assert set(g) >= GROUP_KEYS
        assert UUID.match(g["id"]) and g["modifiers"] == []
        vf = g["visibilityFilter"]
        assert vf is None or (isinstance(vf["departments"], list) and isinstance(vf["excluding"], bool))
        assert g["parent"] is None or g["parent"] in by_id
    for g in live:
        assert g["parent"] is None or not by_id[g["parent"]]["deleted"]

    def depth(g: dict[str, Any]) -> int:
        return 1 if g["parent"] is None else 1 + depth(by_id[g["parent"]])

    assert max(depth(g) for g in everything) == 3
    assert {depth(g) for g in everything} == {1, 2, 3}
    assert any(g["visibilityFilter"] is None for g in everything)
    assert any(g["visibilityFilter"] is not None for g in everything)
    top = next(g for g in live if g["parent"] is None)
    kids = _json(api, GROUPS, tok, parentIds=top["id"])
    assert kids and {g["parent"] for g in kids} == {top["id"]}
    assert [g["id"] for g in _json(api, GROUPS, tok, ids=top["id"])] == [top["id"]]


def test_measure_units(api: Api, token: str) -> None:
    ds = api.emu.state.dataset
    for path in ("v2/entities/list", "entities/list"):
        units = _json(api, path, token, rootType="MeasureUnit")
        assert all(set(u) == {"id", "rootType", "deleted", "code", "name"} for u in units)
        assert {u["rootType"] for u in units} == {"MeasureUnit"}
        assert {p.main_unit_id for p in ds.nomenclature_items()} <= {u["id"] for u in units}
        assert {"кг", "л", "шт", "порц"} <= {u["name"] for u in units}
    both = _json(api, "v2/entities/list", token, rootType=["MeasureUnit", "Conception"])
    assert {r["rootType"] for r in both} == {"MeasureUnit", "Conception"}
    assert _json(api, "v2/entities/list", token, rootType="Nothing") == []


# ------------------------------------------------------------------ employees

def test_employees_xml(seed_api: tuple[Api, str]) -> None:
    api, tok = seed_api
    ds = api.emu.state.dataset
    recs = _employees(api, tok)
    assert {r.tag for r in recs} == {"employee"}
    everything = _employees(api, tok, includeDeleted="true")
    assert len(everything) == len(ds.employees()) and 70 <= len(everything) <= 90
    assert len(recs) < len(everything)
    assert all(_one(r, "deleted") == "false" for r in recs)
    dept_codes = {d.code for d in ds.restaurants()}
    for r in everything:
        assert UUID.match(_one(r, "id") or "")
        assert _one(r, "employee") == "true"  # the nested boolean flag, as in suppliers
        assert _one(r, "supplier") in ("true", "false") and _one(r, "client") in ("true", "false")
        assert set(_values(r, "departmentCodes")) <= dept_codes
        assert _one(r, "name")
        hired = _one(r, "hireDate")
        assert hired is None or re.fullmatch(r"\d{4}-\d{2}-\d{2}T00:00:00", hired)
        assert not (_one(r, "fireDate") and not hired)
    logins = {_one(r, "login") for r in everything}
    assert {"admin", "system"} <= logins, "the list includes system accounts"
    assert any(len(_values(r, "roleCodes")) > 1 for r in everything), "roleCodes repeats, no wrapper"
    assert any(len(_values(r, "departmentCodes")) > 1 for r in everything)
    assert all(r.find("roleCodes/*") is None for r in everything)
    assert any(_one(r, "fireDate") for r in recs), "a dismissed employee can still be listed"
    assert any(_one(r, "fireDate") and _one(r, "deleted") == "true" for r in everything)
    for tag in ("phone", "cellPhone", "email", "address", "cardNumber"):
        assert any(_one(r, tag) for r in everything), tag
    # Staff who are also suppliers carry the supplier's id in both lists.
    suppliers = {s.id for s in ds.suppliers() if s.is_employee and not s.represents_store}
    assert suppliers and suppliers <= {_one(r, "id") for r in everything if _one(r, "supplier") == "true"}
    assert len({tuple(c.tag for c in r) for r in everything}) > 1, "element order varies between records"


def test_employees_revision_and_escaping(api: Api, token: str) -> None:
    state = api.emu.state
    emp = next(e for e in state.dataset.employees() if not e.deleted)
    state.edit_employee(emp.id, name='Иванов "Ваня" & <Ко>')
    recs = _employees(api, token, revisionFrom="1")
    assert [(_one(r, "id"), _one(r, "name")) for r in recs] == [(emp.id, 'Иванов "Ваня" & <Ко>')]
    assert len(_employees(api, token, revisionFrom="-1")) > 1
    assert api.get("employees", token, revisionFrom="x").status_code == 400
    ET.fromstring(api.get("employees", token, includeDeleted="true").content)  # noqa: S314 - stdlib parses it


# ------------------------------------------------------------------ control API and Python twins

def test_control_products(api: Api, token: str) -> None:
    r = api.control("POST", "products", json={"name": "Трюфель «Чёрный»", "type": "GOODS", "num": "T-1",
                                               "default_sale_price": "1500.50", "barcodes": ["4601234567890"],
                                               "containers": [{"id": "00000000-0000-4000-8000-00000000c001",
                                                               "name": "Банка 0,1 кг", "count": "0.1"}]})
    assert r.status_code == 201, r.text
    new = r.json()
    listed = {p["id"]: p for p in _json(api, PRODUCTS, token)}
    assert listed[new["id"]]["name"] == "Трюфель «Чёрный»"
    assert listed[new["id"]]["defaultSalePrice"] == 1500.5
    assert listed[new["id"]]["barcodes"] == [{"barcode": "4601234567890", "containerName": None}]
    assert listed[new["id"]]["containers"][0]["count"] == 0.1
    group = api.control("POST", "product_groups", json={"name": "Деликатесы"}).json()
    assert api.control("PATCH", f"products/{new['id']}", json={"parent_id": group["id"]}).status_code == 200
    assert [p["id"] for p in _json(api, PRODUCTS, token, parentIds=group["id"])] == [new["id"]]
    assert api.control("GET", f"products/{new['id']}").json()["parent_id"] == group["id"]

    assert api.control("DELETE", f"products/{new['id']}").json() == {"ok": True}
    assert new["id"] not in {p["id"] for p in _json(api, PRODUCTS, token)}
    again = {p["id"]: p for p in _json(api, PRODUCTS, token, includeDeleted="true")}
    assert again[new["id"]]["deleted"] is True  # iiko marks deleted, it does not erase
    assert api.control("DELETE", f"products/{new['id']}", purge="true").json() == {"ok": True}
    assert new["id"] not in {p["id"] for p in _json(api, PRODUCTS, token, includeDeleted="true")}
    assert api.control("DELETE", f"products/{new['id']}").status_code == 404
    assert api.control("POST", "products", json={"type": "FOOD"}).status_code == 400
    assert api.control("POST", "products", json={"bogus": 1}).status_code == 400


def test_control_groups_and_employees(api: Api, token: str) -> None:
    top = api.control("POST", "product_groups", json={"name": "Сезонное & новое",
                                                      "visibility_departments": []}).json()
    child = api.control("POST", "product_groups", json={"name": "Лето", "parent_id": top["id"]}).json()
    groups = {g["id"]: g for g in _json(api, GROUPS, token)}
    assert groups[top["id"]]["visibilityFilter"] == {"departments": [], "excluding": True}
    assert groups[child["id"]]["parent"] == top["id"]
    api.control("DELETE", f"product_groups/{child['id']}")
    assert child["id"] not in {g["id"] for g in _json(api, GROUPS, token)}
    assert {g["id"]: g for g in _json(api, GROUPS, token, includeDeleted="true")}[child["id"]]["deleted"] is True

    emp = api.control("POST", "employees", json={"name": "Петрова Анна", "role_codes": ["WTR", "CSH"],
                                                  "department_codes": ["001", "002"], "email": "a@x.example",
                                                  "hire_date": "2024-06-01"}).json()
    recs = {_one(r, "id"): r for r in _employees(api, token)}
    assert _values(recs[emp["id"]], "roleCodes") == ["WTR", "CSH"]
    assert _values(recs[emp["id"]], "departmentCodes") == ["001", "002"]
    assert _one(recs[emp["id"]], "hireDate") == "2024-06-01T00:00:00"
    assert api.control("PATCH", f"employees/{emp['id']}", json={"fire_date": "2024-06-20"}).status_code == 200
    recs = {_one(r, "id"): r for r in _employees(api, token)}
    assert _one(recs[emp["id"]], "fireDate") == "2024-06-20T00:00:00"
    api.control("DELETE", f"employees/{emp['id']}")
    assert emp["id"] not in {_one(r, "id") for r in _employees(api, token)}
    assert emp["id"] in {_one(r, "id") for r in _employees(api, token, includeDeleted="true")}
    assert len(api.control("GET", "employees").json()) == len(api.emu.state.dataset.employees())


def test_python_twins(api: Api, token: str) -> None:
    state = api.emu.state
    p = state.add_product(name="Сыр «Бри»", type="goods", unit_weight="0.2")
    assert p.type == "GOODS" and str(p.unit_weight) == "0.2"
    assert state.edit_product(p.id, deleted=True).deleted
    assert state.remove_product(p.id, purge=True) is True
    assert state.remove_product(p.id) is False
    g = state.add_product_group(name="Сыры")
    assert state.remove_product_group(g.id) and state.dataset.product_group(g.id).deleted
    e = state.add_employee(name="Сидоров Пётр", login="psidorov")
    assert state.edit_employee(e.id, is_client=True).is_client
    assert state.remove_employee(e.id) and state.dataset.employee(e.id).deleted
    state.reset()
    assert state.dataset.employee(e.id) is None


# ------------------------------------------------------------------ a third-party client

def test_pyiiko_reads_the_new_endpoints(emulator: EmulatorServer) -> None:
    password = hashlib.sha1(EMULATOR_PASSWORD.encode("utf-8")).hexdigest()  # noqa: S324 - the iiko protocol
    client = IikoServer(ip=emulator.url, login=EMULATOR_LOGIN, password=password, timeout=5)
    try:
        products = client.nomenclature_list(include_deleted=True)
        groups = client.nomenclature_group_list(include_deleted=True)
        units = client.entities_list(["MeasureUnit"])
        staff = client.employees()
    finally:
        client.quit_token()
        client.close()
    ds = emulator.state.dataset
    assert {p["id"] for p in products} == {p.id for p in ds.nomenclature_items()}
    assert {g["id"] for g in groups} == {g.id for g in ds.product_groups()}
    assert {p["mainUnit"] for p in products} <= {u["id"] for u in units}
    root = ET.fromstring(staff)  # noqa: S314 - our own emulator's output
    assert root.tag == "employees"
    assert {r.findtext("id") for r in root} == {e.id for e in ds.employees() if not e.deleted}
    assert emulator.state.log.summary()["active_tokens"] == 0
