"""The management pages in a real browser (Debian's Chromium, driven by Playwright): what a platform operator
does, found the way they find it, by the visible labels and button names.

The flow test is the newcomer's path: sign in, connect the emulator account through the form, get a wrong
password refused in words without losing the working credentials, sync now and watch the progress turn into
counts, backfill a few days, read it all on the pages, disconnect, sign out. Set UI_SCREENSHOTS=docs/ui to
regenerate the README's screenshots from it.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler

import pytest
import requests
import sqlalchemy as sa
from playwright.sync_api import expect

from iiko_pipeline.warehouse import schema
from iiko_pipeline.warehouse.credentials import IIKO, load_credentials
from tests.conftest import EMULATOR_LOGIN, EMULATOR_PASSWORD, serving
from tests.ui.conftest import screenshot

pytestmark = pytest.mark.slow

RUN_TIMEOUT_MS = 120_000


def sign_in(page, pages, secret: str | None = None) -> None:
    """By keyboard: the secret field has the focus when the page opens, Enter submits."""
    page.goto(pages.url + "/ui/")
    expect(page).to_have_url(re.compile(r"/ui/sign-in"))
    field = page.get_by_label("API token or operator password")
    expect(field).to_be_focused()
    page.keyboard.type(secret or pages.token)
    page.keyboard.press("Enter")


def wider_than_the_screen(page) -> list[str]:
    """Elements that stick out of the viewport (tables scroll inside their own box and do not count)."""
    return page.evaluate("""() => {
        const out = [];
        for (const el of document.querySelectorAll("body *")) {
            if (el.parentElement && el.parentElement.closest(".table-scroll")) continue;
            const box = el.getBoundingClientRect();
            if (box.right > window.innerWidth + 1) out.push(`${el.tagName}.${el.className} ${Math.round(box.right)}`);
        }
        return out;
    }""")


def assert_fits_the_screen(page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), wider_than_the_screen(page)


def count(pages, table: sa.Table, account: str) -> int:
    import uuid

    with pages.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)
                            .where(table.c.account_id == uuid.UUID(account))).scalar_one()


def result_total(page, entity: str) -> int:
    row = page.locator("table.results tbody tr").filter(has=page.get_by_role("rowheader", name=entity, exact=True))
    return int(row.locator("td").first.inner_text())


def test_an_operator_connects_syncs_backfills_and_disconnects_an_account_from_the_pages(pages, page) -> None:
    # Sign in: a wrong secret is refused next to the field; the token works.
    sign_in(page, pages, secret="not-the-token-at-all")
    expect(page.locator("#secret-error")).to_contain_text("not the API token")
    page.get_by_label("API token or operator password").fill(pages.token)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="iiko accounts")).to_be_visible()
    expect(page.get_by_text("No account is connected yet")).to_be_visible()

    # Connect: a wrong password is refused in words, next to the password field, and nothing is stored.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Connect an account").click()
    account = page.get_by_label("Account ID").input_value()
    page.get_by_label("Display name (optional)").fill("Café Pushkin")
    page.get_by_label("iiko Server address").fill(pages.emulator.url)
    page.get_by_label("iiko user name").fill(EMULATOR_LOGIN)
    page.get_by_label("iiko password").fill("not-the-password")
    page.get_by_role("button", name="Connect").click()
    expect(page.locator("#password-error")).to_contain_text("the user name or the password is wrong")
    expect(page.get_by_label("iiko password")).to_have_value("")  # never echoed back
    expect(page.get_by_label("iiko password")).to_have_attribute("aria-invalid", "true")
    assert "not-the-password" not in page.content()
    assert pages.stored_accounts() == []
    page.get_by_label("iiko password").fill(EMULATOR_PASSWORD)
    page.get_by_role("button", name="Connect").click()
    expect(page.get_by_role("heading", name="Café Pushkin")).to_be_visible()
    expect(page.get_by_role("status").first).to_contain_text("Connected")
    assert pages.stored_accounts() == [account]

    # Reconnect with a wrong password: refused, and the account keeps the credentials that work.
    page.get_by_role("link", name="Reconnect").click()
    expect(page.get_by_label("iiko user name")).to_have_value(EMULATOR_LOGIN)
    expect(page.get_by_label("iiko password")).to_have_value("")
    page.get_by_label("iiko password").fill("a-new-wrong-password")
    page.get_by_role("button", name="Reconnect").click()
    expect(page.locator("#password-error")).to_contain_text("keeps its working credentials")
    screenshot(page, "connect-refused")
    assert load_credentials(pages.engine, pages.keyring, account, IIKO).password == EMULATOR_PASSWORD
    assert "a-new-wrong-password" not in page.content()

    # Sync now: the run shows as running, updates by itself, then shows what it stored.
    pages.emulator.state.add_fault(endpoint="corporation/departments", kind="slow", delay=3, count=1)
    page.goto(f"{pages.url}/ui/accounts/{account}")
    page.get_by_role("button", name="Sync restaurants now").click()
    status = page.locator("#progress-status")
    expect(status).to_contain_text("s so far", timeout=RUN_TIMEOUT_MS)  # written by the page's script
    expect(status).to_contain_text("Finished: success", timeout=RUN_TIMEOUT_MS)
    restaurants = count(pages, schema.restaurants, account)
    assert restaurants > 0
    assert result_total(page, "restaurants") == restaurants
    row = page.locator("table.entities tr[data-entity=restaurants]")
    expect(row).to_contain_text(f"{restaurants} total")

    # Backfill three days of invoices (their never-synced references come along).
    first, last = date.today() - timedelta(days=3), date.today() - timedelta(days=1)
    page.get_by_label("Entity").select_option("invoices")
    page.get_by_label("From (first day)").fill(first.isoformat())
    page.get_by_label("To (last day)").fill(last.isoformat())
    page.get_by_role("button", name="Start backfill").click()
    expect(page.locator("#progress-status")).to_contain_text("Finished: success", timeout=RUN_TIMEOUT_MS)
    invoices = count(pages, schema.invoices, account)
    assert invoices > 0
    assert result_total(page, "invoices") == invoices
    expect(page.locator("table.entities tr[data-entity=invoices]")).to_contain_text(f"{invoices} total")
    expect(page.locator("table.runs tbody tr")).to_have_count(2)
    expect(page.get_by_role("link", name=re.compile(r"Open run .* in the Dagster UI"))).to_have_attribute(
        "href", re.compile(r"^http://127\.0\.0\.1:3999/runs/[0-9a-f-]{36}$"))
    screenshot(page, "account")

    # The list: the account with its name, state and counts; usable on a phone-sized screen too.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Accounts").click()
    listed = page.locator(f"tr[data-account='{account}']")
    expect(listed).to_contain_text("Café Pushkin")
    expect(listed).to_contain_text("ok")
    expect(listed).to_contain_text(f"restaurants: just now ({restaurants})")
    screenshot(page, "accounts")
    page.set_viewport_size({"width": 390, "height": 844})
    assert_fits_the_screen(page)
    page.goto(f"{pages.url}/ui/accounts/{account}")
    assert_fits_the_screen(page)
    screenshot(page, "account-phone")
    page.set_viewport_size({"width": 1280, "height": 900})

    # Disconnect, after a confirmation.
    page.get_by_role("link", name="Disconnect…").click()
    page.get_by_role("button", name="Disconnect").click()  # not confirmed: the browser keeps the form
    assert pages.stored_accounts() == [account]
    page.get_by_label(f"Yes, disconnect account {account}").check()
    page.get_by_role("button", name="Disconnect").click()
    expect(page.get_by_role("status").first).to_contain_text("disconnected")
    assert pages.stored_accounts() == []
    assert count(pages, schema.invoices, account) == invoices  # the data stays

    # Sign out: the session is over, for this browser and for a copy of its cookie.
    cookie = next(c for c in page.context.cookies() if c["name"] == "iiko_ui_session")
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/ui/sign-in"))
    page.goto(pages.url + "/ui/")
    expect(page).to_have_url(re.compile(r"/ui/sign-in"))
    replay = requests.get(pages.url + "/ui/", cookies={cookie["name"]: cookie["value"]}, allow_redirects=False,
                          timeout=30)
    assert replay.status_code == 303 and replay.headers["location"].startswith("/ui/sign-in")


def test_a_form_posted_from_another_site_is_refused_and_changes_nothing(pages, page) -> None:
    assert pages.connect().status_code == 200
    sign_in(page, pages)
    expect(page.get_by_role("heading", name="iiko accounts")).to_be_visible()
    page.keyboard.press("Tab")  # keyboard users skip the navigation first
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_label("Show")).to_be_focused()
    target = f"{pages.url}/ui/accounts/{pages.account_id}/disconnect"

    class Attacker(BaseHTTPRequestHandler):
        """Another origin (another port) whose page posts the disconnect form as soon as it loads."""

        def do_GET(self) -> None:
            body = (f'<form id="f" method="post" action="{target}"><input name="confirm" value="yes"></form>'
                    '<script>document.getElementById("f").submit()</script>').encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with serving(Attacker) as attacker:
        with page.expect_response(target) as answer:
            page.goto(attacker)
        assert answer.value.status == 403
    expect(page.get_by_role("heading", name="Request refused")).to_be_visible()
    assert pages.stored_accounts() == [pages.account_id]
