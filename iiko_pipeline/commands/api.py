"""`iiko-pipeline api`: serve the platform's integration endpoints (connect, sync, status, disconnect) and the
management pages under /ui/ (sign in with the API token, or UI_PASSWORD when set).

The bearer token comes from the API_TOKEN environment variable only (a command-line flag would show in `ps`).
Without it the API refuses to start, unless `--insecure-no-auth` is given on a loopback host (the pages then need
no sign-in either, unless UI_PASSWORD is set). DAGSTER_UI_URL is where the pages link each run.
"""

from __future__ import annotations

import argparse

from iiko_pipeline.commands import _common


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("api", help="serve the integration HTTP API and the management pages (needs API_TOKEN)",
                       description="Serve /api/v1/accounts/{account_id}/integrations/iiko/... over HTTP, and the "
                                   "management pages at /ui/. Every API endpoint but /health needs "
                                   "'Authorization: Bearer $API_TOKEN'; the pages sign in with that token or with "
                                   "$UI_PASSWORD, into a session cookie.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000, help="0 picks a free port (printed on start)")
    p.add_argument("--insecure-no-auth", action="store_true",
                   help="serve without a token when API_TOKEN is unset (local development; loopback hosts only)")
    p.add_argument("--ssl-certfile", default=None, help="serve HTTPS with this certificate (PEM)")
    p.add_argument("--ssl-keyfile", default=None, help="the certificate's private key (PEM)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import logging
    import os

    from iiko_pipeline.api import API_TOKEN_ENV, InsecureConfigError, check_token, create_app, serve
    from iiko_pipeline.ui import UiConfigError, ui_password
    from iiko_pipeline.ui.context import dagster_ui_url

    try:
        token = check_token(os.environ.get(API_TOKEN_ENV), insecure=args.insecure_no_auth, host=args.host)
        password, dagster_url = ui_password(), dagster_ui_url()
    except (InsecureConfigError, UiConfigError) as exc:
        raise SystemExit(f"error: {exc}") from None
    if bool(args.ssl_certfile) != bool(args.ssl_keyfile):
        raise SystemExit("error: give both --ssl-certfile and --ssl-keyfile, or neither")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if token is not None and args.insecure_no_auth:
        logging.getLogger("iiko_pipeline.api").warning("%s is set: --insecure-no-auth ignored", API_TOKEN_ENV)
    import iiko_pipeline.definitions  # noqa: F401 - load the Dagster definitions now, not on the first sync

    app = create_app(instance=_common.instance(), engine=_common.engine(), keyring=_common.keyring(),
                     api_token=token, insecure=token is None, ui_password=password, dagster_ui_url=dagster_url)
    logging.getLogger("iiko_pipeline.api").info(
        "management pages at /ui/ (%s)", "no sign-in: local mode" if token is None and password is None else
        "sign in with the API token" + (" or UI_PASSWORD" if password else ""))
    serve(app, args.host, args.port, ssl_certfile=args.ssl_certfile, ssl_keyfile=args.ssl_keyfile)
    return 0
