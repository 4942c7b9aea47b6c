"""Integration management pages, served by `iiko-pipeline api` beside the JSON API (same process, same data).

For the platform operator who connects, watches and repairs accounts without the CLI or the Dagster UI.
Server-rendered HTML (Jinja2, autoescaped) with one small script for run progress; sessions, CSRF and the
headers below make it fit for a browser. The JSON API keeps its bearer tokens.
"""

from __future__ import annotations

from pathlib import Path

from starlette.responses import RedirectResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from iiko_pipeline.ui import pages
from iiko_pipeline.ui.context import UiConfigError, UiContext, ui_password

__all__ = ["PageHeadersMiddleware", "UiConfigError", "UiContext", "is_page_path", "routes", "ui_password"]

#: No inline script or style, nothing from another origin, no framing, forms post only to us.
CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                           "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
PAGE_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


def is_page_path(path: str) -> bool:
    """Paths the pages own: they authenticate by session cookie, not by bearer token."""
    return path in ("/", "/ui") or path.startswith("/ui/")


class PageHeadersMiddleware:
    """Adds the browser security headers to every answer under the pages' paths."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_page_path(scope.get("path", "")):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []), *(h for h in PAGE_HEADERS if h[0] not in names)]
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _to_pages(request) -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=303)


def routes() -> list[BaseRoute]:
    page, form = pages.page, (lambda handler: pages.page(handler, form=True))
    account = "/ui/accounts/{account_id}"
    return [
        Route("/", _to_pages, methods=["GET"]),
        Route("/ui", _to_pages, methods=["GET"]),
        Route("/ui/", page(pages.accounts), methods=["GET"]),
        Route("/ui/sign-in", pages.sign_in_form, methods=["GET"]),
        Route("/ui/sign-in", pages.sign_in, methods=["POST"]),
        Route("/ui/sign-out", form(pages.sign_out), methods=["POST"]),
        Route("/ui/connect", page(pages.connect_form), methods=["GET"]),
        Route("/ui/connect", form(pages.connect), methods=["POST"]),
        Route(account, page(pages.account), methods=["GET"]),
        Route(f"{account}/connect", page(pages.connect_form), methods=["GET"]),
        Route(f"{account}/connect", form(pages.connect), methods=["POST"]),
        Route(f"{account}/name", form(pages.rename), methods=["POST"]),
        Route(f"{account}/sync", form(pages.sync), methods=["POST"]),
        Route(f"{account}/backfill", form(pages.backfill), methods=["POST"]),
        Route(f"{account}/disconnect", page(pages.disconnect_form), methods=["GET"]),
        Route(f"{account}/disconnect", form(pages.disconnect), methods=["POST"]),
        Route(f"{account}/runs/{{run_id}}", page(pages.progress), methods=["GET"]),
        Mount("/ui/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static"),
    ]
