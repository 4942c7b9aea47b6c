"""The /_emulator/ control API and its Python twin: mutations must show in the next iiko export."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest
import requests
from emulator_helpers import Api, children, documents, parse

TODAY = date(2024, 6, 30)


@pytest.fixture
def pinned(make_emulator):
    with make_emulator(today=TODAY) as emu:
        api = Api(emu)
        tok = api.login()
        yield api, tok
        api.logout(tok)


def _export(api: Api, tok: str, day: str, to: str | None = None) -> dict[str, dict]:
    return {d["id"]: d for d in documents(parse(api.invoices(tok, day, to or day).content))}


def test_health_and_config(api: Api) -> None:
    assert api.control("GET", "health").json() == {"ok": True}
    cfg = api.control("GET", "config").json()
    assert cfg["seats"] == 1 and cfg["scale"] == "tiny"
    assert "password" not in cfg
    assert api.emu.config.password not in str(cfg)
    changed = api.control("POST", "config", json={"seats": 3, "token_ttl": 1.5, "mode": "normal",
                                                 "permission_denied": ["suppliers"], "version": "7.5.0",
                                                 "charset_in_content_type": True, "date_offset": "+03:00"})
    assert changed.status_code == 200
    assert (changed.json()["seats"], changed.json()["token_ttl"], changed.json()["version"]) == (3, 1.5, "7.5.0")
    assert api.control("POST", "config", json={"seed": 5}).status_code == 400
    assert api.control("POST", "config", json={"mode": "sleepy"}).status_code == 400
    assert api.control("POST", "config", json={"date_offset": "3h"}).status_code == 400
    assert api.control("GET", "nothing-here").status_code == 404


def test_create_document_with_defaults(pinned) -> None:
    api, tok = pinned
    r = api.control("POST", "documents", json={"date_incoming": "2024-06-15T10:00:00"})
    assert r.status_code == 201
    doc = r.json()
    assert doc["date_incoming"] == "2024-06-15T10:00:00"
    assert doc["status"] == "PROCESSED"
    assert len(doc["items"]) == 1
    item = doc["items"][0]
    assert isinstance(item["sum"], str)
    assert Decimal(item["sum"]) == (Decimal(item["amount"]) * Decimal(item["price"])).quantize(Decimal("0.01"))
    exported = _export(api, tok, "2024-06-15")[doc["id"]]
    assert exported["documentNumber"] == doc["document_number"]
    assert exported["items"][0]["sum"] == f"{Decimal(item['sum']):.9f}"
    assert api.control("GET", f"documents/{doc['id']}").json() == doc
    listed = api.control("GET", "documents", **{"from": "2024-06-15", "to": "2024-06-15"}).json()
    assert doc["id"] in {d["id"] for d in listed}
    assert api.control("POST", "documents", json={"comment": "no date"}).status_code == 400
    assert api.control("POST", "documents", json={"date_incoming": "x"}).status_code == 400
    assert api.control("POST", "documents", json={"date_incoming": "2024-06-15", "bogus": 1}).status_code == 400


def test_edit_status_comment_items_and_back_date(pinned) -> None:
    api, tok = pinned
    before = _export(api, tok, "2024-06-20")
    target = next(d for d in before.values() if d["status"] == "PROCESSED")
    doc_id = target["id"]

    r = api.control("PATCH", f"documents/{doc_id}", json={
        "status": "DELETED", "comment": "Исправлено & пересчитано",
        "items": [{"amount": "2.5", "price": "100.00"}, {"amount": "1", "price": "10.01", "vat_percent": "20",
                                                          "is_additional_expense": True}]})
    assert r.status_code == 200, r.text
    after = _export(api, tok, "2024-06-20")[doc_id]
    assert after["status"] == "DELETED"
    assert after["comment"] == "Исправлено & пересчитано"
    assert [i["sum"] for i in after["items"]] == ["250.000000000", "10.010000000"]
    assert after["items"][1]["vatSum"] == "1.670000000"
    assert after["items"][1]["isAdditionalExpense"] == "true"

    # Back-date: the document leaves its day and shows up on the new one.
    api.control("PATCH", f"documents/{doc_id}", json={"date_incoming": "2024-06-05T09:30:00"})
    assert doc_id not in _export(api, tok, "2024-06-20")
    moved = _export(api, tok, "2024-06-05")[doc_id]
    assert moved["dateIncoming"] == "2024-06-05T09:30:00"
    assert moved["status"] == "DELETED"
    # Everything else on the old day is untouched.
    assert set(_export(api, tok, "2024-06-20")) == set(before) - {doc_id}
    truth = api.emu.state.dataset.invoice(doc_id)
    assert truth is not None and truth.date_incoming == datetime(2024, 6, 5, 9, 30)


def test_delete_document_vanishes(pinned) -> None:
    api, tok = pinned
    doc_id = next(iter(_export(api, tok, "2024-06-21")))
    assert api.control("DELETE", f"documents/{doc_id}").json() == {"ok": True}
    assert doc_id not in _export(api, tok, "2024-06-21")
    assert api.control("GET", f"documents/{doc_id}").status_code == 404
    assert api.control("DELETE", f"documents/{doc_id}").status_code == 404
    assert api.emu.state.dataset.invoice(doc_id) is None
    assert doc_id not in {d.id for d in api.emu.state.dataset.invoices(date(2024, 6, 21), date(2024, 6, 21))}


def test_python_methods_match_the_http_api(pinned) -> None:
    api, tok = pinned
    state = api.emu.state
    created = state.add_invoice(date_incoming=datetime(2024, 6, 25, 8, 0), comment="из теста",
                                items=[{"amount": Decimal("3"), "price": Decimal("1.50")}])
    assert created.items[0].sum == Decimal("4.50")
    state.set_status(created.id, "NEW")
    assert _export(api, tok, "2024-06-25")[created.id]["status"] == "NEW"
    edited = state.edit_invoice(created.id, {"comment": None})
    assert edited.comment is None
    assert "comment" not in _export(api, tok, "2024-06-25")[created.id]
    assert state.remove_invoice(created.id) is True
    assert created.id not in _export(api, tok, "2024-06-25")
    assert state.remove_invoice(created.id) is False


def test_revision_from_returns_only_changed_documents(pinned) -> None:
    api, tok = pinned
    doc_id = next(iter(_export(api, tok, "2024-06-22")))
    api.emu.state.set_status(doc_id, "NEW")
    r = api.invoices(tok, "2024-06-01", "2024-06-30", revisionFrom="1")
    assert [d["id"] for d in documents(parse(r.content))] == [doc_id]
    assert len(documents(parse(api.invoices(tok, "2024-06-22", "2024-06-22", revisionFrom="-1").content))) > 1


def test_supplier_crud(api: Api, token: str) -> None:
    r = api.control("POST", "suppliers", json={"name": "ИП Новиков", "code": "N-1", "taxpayer_id": "771234567890"})
    assert r.status_code == 201
    sup = r.json()
    recs = {rec["id"]: rec for rec in children(parse(api.get("suppliers", token).content))}
    assert recs[sup["id"]]["name"] == "ИП Новиков"
    assert recs[sup["id"]]["supplier"] == "true"
    api.control("PATCH", f"suppliers/{sup['id']}", json={"deleted": True, "name": "ИП Новиков (закрыт)"})
    recs = {rec["id"]: rec for rec in children(parse(api.get("suppliers", token).content))}
    assert (recs[sup["id"]]["deleted"], recs[sup["id"]]["name"]) == ("true", "ИП Новиков (закрыт)")
    assert api.control("DELETE", f"suppliers/{sup['id']}").json() == {"ok": True}
    assert sup["id"] not in {rec["id"] for rec in children(parse(api.get("suppliers", token).content))}
    assert api.control("PATCH", f"suppliers/{sup['id']}", json={"deleted": True}).status_code == 404
    assert len(api.control("GET", "suppliers").json()) == 12


def test_department_and_store_crud(api: Api, token: str) -> None:
    dept = api.control("POST", "departments", json={"name": "Кафе «Новое»"}).json()
    assert dept["type"] == "DEPARTMENT" and dept["code"] == "003"
    store = api.control("POST", "stores", json={"name": "Склад «Новый»", "parent_id": dept["id"]}).json()
    assert store["type"] == "STORE"
    deps = {rec["id"]: rec for rec in children(parse(api.get("corporation/departments", token).content))}
    assert deps[dept["id"]]["name"] == "Кафе «Новое»"
    assert deps[store["id"]]["parentId"] == dept["id"]
    stores = {rec["id"]: rec for rec in children(parse(api.get("corporation/stores", token).content))}
    assert stores[store["id"]]["parentId"] == dept["id"]

    api.control("PATCH", f"stores/{store['id']}", json={"code": "77"})
    api.control("PATCH", f"departments/{dept['id']}", json={"name": "Кафе «Переименовано»"})
    stores = {rec["id"]: rec for rec in children(parse(api.get("corporation/stores", token).content))}
    assert stores[store["id"]]["code"] == "77"
    assert api.emu.state.dataset.corporate_item(dept["id"]).name == "Кафе «Переименовано»"
    assert api.control("PATCH", f"stores/{dept['id']}", json={"code": "1"}).status_code == 404  # not a store

    assert api.control("DELETE", f"stores/{store['id']}").json() == {"ok": True}
    assert api.control("DELETE", f"departments/{dept['id']}").json() == {"ok": True}
    ids = {rec["id"] for rec in children(parse(api.get("corporation/departments", token).content))}
    assert not {dept["id"], store["id"]} & ids
    assert len(api.control("GET", "stores").json()) == 4


def test_bad_requests(api: Api) -> None:
    r = api.control("POST", "documents", json=None)
    assert r.status_code == 400
    r = requests.post(f"{api.base}/_emulator/documents", data=b"{not json", timeout=5)
    assert r.status_code == 400 and "error" in r.json()
    assert api.control("PATCH", "documents/00000000-0000-4000-8000-000000000000", json={"status": "NEW"}).status_code \
        == 404
    assert api.control("PUT", "health").status_code == 404


def test_reset_restores_the_start_state(pinned) -> None:
    api, tok = pinned
    original = api.invoices(tok, "2024-06-01", "2024-06-10").content
    doc_id = next(iter(_export(api, tok, "2024-06-03")))
    api.emu.state.remove_invoice(doc_id)
    api.emu.state.add_supplier(name="ООО «Временный»")
    api.emu.state.add_fault("*", "http_500", count=5)
    api.emu.state.configure(seats=5)
    assert api.control("POST", "reset").json() == {"ok": True}
    assert api.emu.state.log.records() == []
    assert api.emu.state.config.seats == 1
    assert api.get("suppliers", tok).status_code == 401, "tokens are gone"
    tok2 = api.login()
    assert api.invoices(tok2, "2024-06-01", "2024-06-10").content == original
    assert len(children(parse(api.get("suppliers", tok2).content))) == 12
    api.logout(tok2)
    # reset can switch the data set
    api.control("POST", "reset", json={"seed": 8})
    tok3 = api.login()
    assert api.invoices(tok3, "2024-06-01", "2024-06-10").content != original
    api.logout(tok3)


def test_the_control_api_can_require_a_token(make_emulator) -> None:
    """Bound beyond loopback, the control API would let anyone rewrite the data or switch faults on; with
    `control_token` set it answers 401 to a request without the bearer token, and the iiko API is unaffected."""
    with make_emulator(control_token="emu-control-0123456789") as emu:
        api = Api(emu)
        assert api.control("GET", "health").status_code == 401
        wrong = requests.get(f"{api.base}/_emulator/config", headers={"Authorization": "Bearer nope"}, timeout=10)
        assert wrong.status_code == 401 and "emu-control" not in wrong.text
        assert requests.post(f"{api.base}/_emulator/reset", timeout=10).status_code == 401
        right = requests.get(f"{api.base}/_emulator/config", timeout=10,
                             headers={"Authorization": "Bearer emu-control-0123456789"})
        assert right.status_code == 200 and "control_token" not in right.json()
        tok = api.login()  # the iiko API itself needs no control token
        assert api.get("corporation/departments", tok).status_code == 200
        api.logout(tok)
