"""`connect`, `accounts`, `disconnect` and `keys rotate`: managing connected accounts and their credentials."""

from __future__ import annotations

import argparse
import os
import sys

from iiko_pipeline.commands import _common


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("connect", help="log in to iiko once, store the credentials encrypted, add the partition")
    p.add_argument("account_id", help="the account's UUID")
    p.add_argument("--username", required=True)
    p.add_argument("--base-url", default=None,
                   help="iiko server URL, e.g. https://iiko.example (required unless IIKO_DEFAULT_BASE_URL is set)")
    p.add_argument("--password-stdin", action="store_true",
                   help="read the password from standard input (otherwise from IIKO_PASSWORD)")
    p.add_argument("--insecure", action="store_true", help="do not verify the server's TLS certificate")
    p.add_argument("--ca-bundle", default=None, help="verify TLS against this CA bundle")
    p.add_argument("--allow-http", action="store_true",
                   help="allow plain http to a host that is not loopback for this account (the login crosses the "
                        "network unencrypted); stored with the account, so its syncs are allowed it too")
    p.set_defaults(handler=connect)

    p = sub.add_parser("accounts", help="status of every account (never a secret)")
    p.set_defaults(handler=accounts)

    p = sub.add_parser("disconnect", help="remove an account's credentials (synced data is kept; refused while a "
                                          "run holds the account)")
    p.add_argument("account_id")
    p.set_defaults(handler=disconnect)

    p = sub.add_parser("keys", help="credential key management")
    keys_sub = p.add_subparsers(dest="keys_command", required=True)
    r = keys_sub.add_parser("rotate", help="re-encrypt every credential row under CREDENTIAL_ENCRYPTION_KEY")
    r.set_defaults(handler=rotate)
    g = keys_sub.add_parser("generate", help="print a fresh random key for CREDENTIAL_ENCRYPTION_KEY")
    g.set_defaults(handler=generate)


def _password(args: argparse.Namespace) -> str:
    stdin = args.password_stdin
    password = sys.stdin.readline().rstrip("\r\n") if stdin else os.environ.get("IIKO_PASSWORD", "")
    if not password:
        raise SystemExit("error: give the password on standard input with --password-stdin, "
                         "or in the IIKO_PASSWORD environment variable")
    return password


def connect(args: argparse.Namespace) -> int:
    import uuid

    from iiko_pipeline.defs.partitions import accounts_partitions_def
    from iiko_pipeline.iiko.hosts import MissingBaseUrlError
    from iiko_pipeline.services.connect import (
        CredentialTextError,
        IntegrationsDisabledError,
        check_credential_text,
        connect_account,
    )

    try:
        account = str(uuid.UUID(args.account_id))
    except ValueError:
        raise SystemExit(f"error: ACCOUNT_ID must be a UUID, got {args.account_id!r}") from None
    password = _password(args)
    try:  # before anything is opened or sent; the message never shows the value
        check_credential_text(args.username, password)
    except CredentialTextError as exc:
        raise SystemExit(f"error: {exc}") from None
    verify: bool | str = args.ca_bundle or (not args.insecure)

    def register_partition(account_id: str) -> None:
        _common.instance().add_dynamic_partitions(accounts_partitions_def.name, [account_id])

    try:
        result = connect_account(_common.engine(), _common.keyring(), account, args.username, password,
                                 args.base_url, verify_tls=verify, allow_http=args.allow_http,
                                 register_partition=register_partition)
    except IntegrationsDisabledError as exc:
        raise SystemExit(f"error: {exc}") from None
    except MissingBaseUrlError:
        raise SystemExit("error: no iiko server given: pass --base-url or set IIKO_DEFAULT_BASE_URL") from None
    except ValueError as exc:  # HostPolicyError (the URL policy) or a malformed URL: no request was made
        raise SystemExit(f"error: {exc}") from None
    _common.print_json(result.as_dict())
    return 0 if result.is_connected else 1


def accounts(args: argparse.Namespace) -> int:
    from iiko_pipeline.warehouse.credentials import list_accounts

    rows = list_accounts(_common.engine())
    _common.print_json([{
        "account_id": str(r.account_id), "integration_type": r.integration_type, "base_url": r.base_url,
        "allow_http": r.allow_http, "is_connected": r.is_connected, "last_connected_at": r.last_connected_at,
        "connection_error": r.connection_error, "key_id": r.key_id,
    } for r in rows])
    return 0


def disconnect(args: argparse.Namespace) -> int:
    """The API's and the pages' use case: refused (exit 2, naming the run) while a run holds the account, so a
    sync never loses its credentials halfway."""
    from iiko_pipeline.services.launcher import AccountBusyError, disconnect_account

    try:
        existed = disconnect_account(_common.instance(), _common.engine(), _common.keyring(), args.account_id)
    except AccountBusyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _common.print_json({"account_id": args.account_id, "disconnected": existed})
    return 0 if existed else 1


def rotate(args: argparse.Namespace) -> int:
    from iiko_pipeline.warehouse.credentials import rotate_keys

    report = rotate_keys(_common.engine(), _common.keyring())
    _common.print_json({"rewritten": report.rewritten, "already_current": report.already_current,
                        "legacy_migrated": report.legacy_migrated, "current_key_id": report.current_key_id,
                        "legacy_key_is_current": report.legacy_key_is_current})
    return 0


def generate(args: argparse.Namespace) -> int:
    from iiko_pipeline.warehouse.crypto import generate_key

    print(generate_key())
    return 0
