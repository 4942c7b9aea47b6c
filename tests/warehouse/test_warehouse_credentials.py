"""The credentials repository on real SQLite and PostgreSQL: round trips, status updates that never touch
the ciphertext, key rotation (including legacy fixed-nonce rows) and no plaintext at rest."""

from __future__ import annotations

import base64
import hashlib
import uuid
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from warehouse_testlib import KEY_A, KEY_B, KEY_C, LEGACY_NONCE, legacy_encrypt_for_tests

from iiko_pipeline.warehouse import (
    CredentialDecryptError,
    Credentials,
    CredentialsNotFoundError,
    KeyRing,
    LegacyCredentialWarning,
    connected_account_ids,
    delete_credentials,
    list_accounts,
    load_credentials,
    mark_connection,
    rotate_keys,
    save_credentials,
    schema,
)
from iiko_pipeline.warehouse.credentials import normalise_base_url
from iiko_pipeline.warehouse.crypto import key_id_for

ACC1 = uuid.UUID("11111111-1111-4111-8111-111111111111")
ACC2 = uuid.UUID("22222222-2222-4222-8222-222222222222")
ACC3 = uuid.UUID("33333333-3333-4333-8333-333333333333")
USERNAME = "etl_user"
PASSWORD = "пароль#Test1-очень-секретный"  # non-ASCII, and long enough to be unmistakable in a byte scan
T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)

creds = schema.account_integration_credentials


def _row(engine: sa.Engine, account: uuid.UUID, integration: str = "iiko") -> sa.Row:
    with engine.connect() as conn:
        return conn.execute(
            sa.select(creds).where(creds.c.account_id == account, creds.c.integration_type == integration)
        ).one()


def _save(engine: sa.Engine, ring: KeyRing, account: uuid.UUID, password: str = PASSWORD, **kw: object) -> None:
    save_credentials(engine, ring, account, "iiko", USERNAME, password, **kw)


def test_round_trip(engine: sa.Engine, keyring_a: KeyRing) -> None:
    save_credentials(
        engine, keyring_a, ACC1, "iiko", USERNAME, PASSWORD,
        base_url="https://demo-co.iiko.it/resto/api/", verify_tls=False, connected_at=T0,
    )
    loaded = load_credentials(engine, keyring_a, ACC1, "iiko")
    assert loaded == Credentials(USERNAME, PASSWORD, "https://demo-co.iiko.it", False)
    row = _row(engine, ACC1)
    assert row.key_id == keyring_a.current_key_id
    assert row.is_connected is True and row.last_connected_at == T0 and row.connection_error is None
    assert row.created_at.tzinfo is not None and row.updated_at >= row.created_at
    assert bytes(row.credentials_ciphertext)[:1] == b"\x01"


def test_default_base_url_is_null_and_account_id_may_be_text(engine: sa.Engine, keyring_a: KeyRing) -> None:
    save_credentials(engine, keyring_a, str(ACC1).upper(), "iiko", USERNAME, PASSWORD)
    loaded = load_credentials(engine, keyring_a, str(ACC1), "iiko")
    assert loaded.base_url is None and loaded.verify_tls is True
    row = _row(engine, ACC1)
    assert row.is_connected is False and row.last_connected_at is None


def test_save_again_replaces_in_place(engine: sa.Engine, keyring_a: KeyRing) -> None:
    _save(engine, keyring_a, ACC1, connected_at=T0)
    mark_connection(engine, ACC1, "iiko", False, "401 Unauthorized", T0 + timedelta(hours=1))
    first = _row(engine, ACC1)
    _save(engine, keyring_a, ACC1, password="new-password", base_url="http://10.0.0.5:8080")
    second = _row(engine, ACC1)
    assert second.id == first.id and second.created_at == first.created_at
    assert bytes(second.credentials_ciphertext) != bytes(first.credentials_ciphertext)
    assert second.connection_error is None and second.is_connected is False
    assert second.last_connected_at == T0  # history kept: the last *successful* login
    assert load_credentials(engine, keyring_a, ACC1, "iiko") == Credentials(
        USERNAME, "new-password", "http://10.0.0.5:8080", True
    )
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(creds)).scalar_one() == 1


def test_one_row_per_integration_type(engine: sa.Engine, keyring_a: KeyRing) -> None:
    _save(engine, keyring_a, ACC1, connected_at=T0)
    save_credentials(engine, keyring_a, ACC1, "r_keeper", "rk_user", "rk-pass", connected_at=T0)
    assert load_credentials(engine, keyring_a, ACC1, "r_keeper").username == "rk_user"
    assert load_credentials(engine, keyring_a, ACC1, "iiko").username == USERNAME
    assert connected_account_ids(engine, "iiko") == [ACC1]
    assert connected_account_ids(engine, "r_keeper") == [ACC1]


def test_mark_connection_never_touches_the_ciphertext(engine: sa.Engine, keyring_a: KeyRing) -> None:
    _save(engine, keyring_a, ACC1, connected_at=T0)
    before = _row(engine, ACC1)
    mark_connection(engine, ACC1, "iiko", False, "403 License enhancement is required", T0 + timedelta(hours=2))
    failed = _row(engine, ACC1)
    assert bytes(failed.credentials_ciphertext) == bytes(before.credentials_ciphertext)
    assert failed.key_id == before.key_id
    assert failed.is_connected is False
    assert failed.connection_error == "403 License enhancement is required"
    assert failed.last_connected_at == T0
    mark_connection(engine, ACC1, "iiko", True, at=T0 + timedelta(hours=3))
    ok = _row(engine, ACC1)
    assert bytes(ok.credentials_ciphertext) == bytes(before.credentials_ciphertext)
    assert ok.is_connected is True and ok.connection_error is None
    assert ok.last_connected_at == T0 + timedelta(hours=3)
    mark_connection(engine, ACC1, "iiko", False, "x" * 10_000)
    assert len(_row(engine, ACC1).connection_error) == 2000


def test_missing_credentials(engine: sa.Engine, keyring_a: KeyRing) -> None:
    with pytest.raises(CredentialsNotFoundError, match=str(ACC1)):
        load_credentials(engine, keyring_a, ACC1, "iiko")
    with pytest.raises(CredentialsNotFoundError):
        mark_connection(engine, ACC1, "iiko", True)
    assert delete_credentials(engine, ACC1, "iiko") is False


def test_list_accounts_and_connected_ids_hold_no_secrets(engine: sa.Engine, keyring_a: KeyRing) -> None:
    _save(engine, keyring_a, ACC2, connected_at=T0)
    _save(engine, keyring_a, ACC1, connected_at=T0)
    _save(engine, keyring_a, ACC3)  # saved but never connected
    mark_connection(engine, ACC2, "iiko", False, "timeout")
    statuses = list_accounts(engine)
    assert [s.account_id for s in statuses] == [ACC1, ACC2, ACC3]
    assert [s.is_connected for s in statuses] == [True, False, False]
    assert statuses[1].connection_error == "timeout"
    assert all(s.key_id == keyring_a.current_key_id for s in statuses)
    text = repr(statuses)
    assert PASSWORD not in text and USERNAME not in text and "ciphertext" not in text
    assert connected_account_ids(engine, "iiko") == [ACC1]
    assert list_accounts(engine, "r_keeper") == []


def test_credentials_repr_masks_the_password() -> None:
    c = Credentials(USERNAME, PASSWORD, None, True)
    assert PASSWORD not in repr(c) and PASSWORD not in str(c) and PASSWORD not in f"{c}"
    assert "***" in repr(c) and USERNAME in repr(c)


def test_allow_http_is_stored_returned_and_replaced_with_the_credentials(engine: sa.Engine,
                                                                        keyring_a: KeyRing) -> None:
    _save(engine, keyring_a, ACC2, base_url="https://demo-co.iiko.it", connected_at=T0)
    _save(engine, keyring_a, ACC1, base_url="http://10.0.0.5:8080", connected_at=T0, allow_http=True)
    loaded = load_credentials(engine, keyring_a, ACC1, "iiko")
    assert loaded == Credentials(USERNAME, PASSWORD, "http://10.0.0.5:8080", True, None, allow_http=True)
    assert "allow_http=True" in repr(loaded) and PASSWORD not in repr(loaded)
    assert load_credentials(engine, keyring_a, ACC2, "iiko").allow_http is False  # the default: https only
    assert _row(engine, ACC1).allow_http is True and _row(engine, ACC2).allow_http is False
    assert [(s.account_id, s.allow_http) for s in list_accounts(engine)] == [(ACC1, True), (ACC2, False)]
    mark_connection(engine, ACC1, "iiko", False, "timeout")  # status updates leave the opt-in alone
    assert load_credentials(engine, keyring_a, ACC1, "iiko").allow_http is True
    _save(engine, keyring_a, ACC1, base_url="https://demo-co.iiko.it", connected_at=T0 + timedelta(hours=1))
    assert load_credentials(engine, keyring_a, ACC1, "iiko").allow_http is False  # it went with the old URL


def test_delete_keeps_synced_rows(engine: sa.Engine, keyring_a: KeyRing) -> None:
    _save(engine, keyring_a, ACC1, connected_at=T0)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(schema.restaurants).values(
                account_id=ACC1, external_system="iiko", external_id="6f1c2b1e-0000-4000-8000-000000000101"
            )
        )
    assert delete_credentials(engine, ACC1, "iiko") is True
    assert list_accounts(engine) == [] and connected_account_ids(engine, "iiko") == []
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.restaurants)).scalar_one() == 1


def test_ciphertext_copied_to_another_account_does_not_decrypt(engine: sa.Engine, keyring_a: KeyRing) -> None:
    _save(engine, keyring_a, ACC1, connected_at=T0)
    _save(engine, keyring_a, ACC2, password="acc2-password")
    stolen = bytes(_row(engine, ACC1).credentials_ciphertext)
    with engine.begin() as conn:
        conn.execute(sa.update(creds).where(creds.c.account_id == ACC2).values(credentials_ciphertext=stolen))
    with pytest.raises(CredentialDecryptError, match=str(ACC2)):
        load_credentials(engine, keyring_a, ACC2, "iiko")


def test_base_url_validation() -> None:
    assert normalise_base_url(None) is None and normalise_base_url("  ") is None
    assert normalise_base_url("https://x.iiko.it:443/resto/") == "https://x.iiko.it:443"
    assert normalise_base_url("http://10.0.0.5:8080/") == "http://10.0.0.5:8080"
    for bad in ("ftp://x", "x.iiko.it", "https://user:pw@x.iiko.it", "https://x.iiko.it/?key=1"):
        with pytest.raises(ValueError):
            normalise_base_url(bad)


# -- rotation ---------------------------------------------------------------------------------------------


def test_rotation_rewrites_every_row_under_the_current_key(engine: sa.Engine) -> None:
    ring_a = KeyRing.from_keys(KEY_A)
    ring_b = KeyRing.from_keys(KEY_B, previous=[KEY_A])
    for account in (ACC1, ACC2):
        _save(engine, ring_a, account, password=f"pw-{account}", connected_at=T0)
    _save(engine, ring_b, ACC3, password="pw-3")  # already under the new key
    untouched = bytes(_row(engine, ACC3).credentials_ciphertext)

    report = rotate_keys(engine, ring_b)
    assert (report.rewritten, report.already_current, report.legacy_migrated) == (2, 1, 0)
    assert report.total == 3 and report.current_key_id == key_id_for(KEY_B)
    assert bytes(_row(engine, ACC3).credentials_ciphertext) == untouched

    only_b = KeyRing.from_keys(KEY_B)  # the old key can now be dropped
    for account, password in ((ACC1, f"pw-{ACC1}"), (ACC2, f"pw-{ACC2}"), (ACC3, "pw-3")):
        assert load_credentials(engine, only_b, account, "iiko").password == password
        row = _row(engine, account)
        assert row.key_id == key_id_for(KEY_B) == bytes(row.credentials_ciphertext)[1:5].hex()
        assert row.is_connected is (account != ACC3)  # rotation does not touch status

    again = rotate_keys(engine, only_b)
    assert (again.rewritten, again.already_current, again.legacy_migrated) == (0, 3, 0)


def test_rotation_uses_fresh_nonces(engine: sa.Engine) -> None:
    _save(engine, KeyRing.from_keys(KEY_A), ACC1)
    before = bytes(_row(engine, ACC1).credentials_ciphertext)
    rotate_keys(engine, KeyRing.from_keys(KEY_B, previous=[KEY_A]))
    rotate_keys(engine, KeyRing.from_keys(KEY_C, previous=[KEY_B]))
    after = bytes(_row(engine, ACC1).credentials_ciphertext)
    assert after[1:5].hex() == key_id_for(KEY_C)
    assert after[5:17] != before[5:17]


def _insert_legacy(engine: sa.Engine, account: uuid.UUID, blob: bytes) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.insert(creds).values(
                account_id=account, integration_type="iiko", credentials_ciphertext=blob, key_id=None,
                is_connected=True, last_connected_at=T0,
            )
        )


def test_legacy_rows_decrypt_with_a_warning_and_rotation_migrates_them(engine: sa.Engine) -> None:
    secret = f'{{"username": "{USERNAME}", "password": "{PASSWORD}"}}'.encode()
    raw = legacy_encrypt_for_tests(KEY_A, LEGACY_NONCE, secret)
    _insert_legacy(engine, ACC1, raw)
    _insert_legacy(engine, ACC2, base64.b64encode(raw))
    _save(engine, KeyRing.from_keys(KEY_A), ACC3, password="pw-3")

    legacy_ring = KeyRing.from_keys(KEY_B, previous=[KEY_A], legacy_nonce=LEGACY_NONCE)
    with pytest.warns(LegacyCredentialWarning, match="iiko-pipeline keys rotate"):
        assert load_credentials(engine, legacy_ring, ACC1, "iiko").password == PASSWORD
    with pytest.raises(CredentialDecryptError, match="CREDENTIAL_ENCRYPTION_NONCE"):
        load_credentials(engine, KeyRing.from_keys(KEY_B, previous=[KEY_A]), ACC2, "iiko")

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # rotation itself does not nag about legacy rows
        report = rotate_keys(engine, legacy_ring)
    assert (report.rewritten, report.already_current, report.legacy_migrated) == (1, 0, 2)
    assert report.legacy_key_is_current is False

    final = KeyRing.from_keys(KEY_B)  # no old key, no nonce
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for account in (ACC1, ACC2):
            assert load_credentials(engine, final, account, "iiko") == Credentials(USERNAME, PASSWORD, None, True)
        assert load_credentials(engine, final, ACC3, "iiko").password == "pw-3"
    for account in (ACC1, ACC2, ACC3):
        row = _row(engine, account)
        assert bytes(row.credentials_ciphertext)[:5] == b"\x01" + bytes.fromhex(key_id_for(KEY_B))
        assert row.key_id == key_id_for(KEY_B)


def test_rotating_legacy_rows_under_the_same_key_is_flagged(engine: sa.Engine) -> None:
    secret = b'{"username": "u", "password": "p"}'
    _insert_legacy(engine, ACC1, legacy_encrypt_for_tests(KEY_A, LEGACY_NONCE, secret))
    report = rotate_keys(engine, KeyRing.from_keys(KEY_A, legacy_nonce=LEGACY_NONCE))
    assert report.legacy_migrated == 1 and report.legacy_key_is_current is True


def test_rotation_is_all_or_nothing(engine: sa.Engine) -> None:
    ring_a = KeyRing.from_keys(KEY_A)
    _save(engine, ring_a, ACC1)
    _save(engine, KeyRing.from_keys(KEY_C), ACC2)  # under a key the rotating keyring does not know
    _save(engine, ring_a, ACC3)
    before = {a: bytes(_row(engine, a).credentials_ciphertext) for a in (ACC1, ACC2, ACC3)}
    with pytest.raises(CredentialDecryptError, match=key_id_for(KEY_C)):
        rotate_keys(engine, KeyRing.from_keys(KEY_B, previous=[KEY_A]))
    assert {a: bytes(_row(engine, a).credentials_ciphertext) for a in before} == before


# -- nothing secret at rest -------------------------------------------------------------------------------


def _forbidden(password: str) -> list[bytes]:
    digest = hashlib.sha1(password.encode("utf-8"))  # noqa: S324 - iiko's login hash, searched for here
    return [
        password.encode("utf-8"),
        password.encode("utf-16-le"),
        digest.hexdigest().encode(),
        digest.hexdigest().upper().encode(),
        digest.digest(),
    ]


def test_no_plaintext_or_sha1_in_the_sqlite_file(sqlite_url: str) -> None:
    from iiko_pipeline.warehouse import make_engine, migrate

    engine = make_engine(sqlite_url)
    migrate(engine)
    ring_a = KeyRing.from_keys(KEY_A)
    _save(engine, ring_a, ACC1, connected_at=T0)
    _save(engine, ring_a, ACC2, connected_at=T0)
    mark_connection(engine, ACC1, "iiko", False, "401")
    assert load_credentials(engine, ring_a, ACC1, "iiko").password == PASSWORD
    rotate_keys(engine, KeyRing.from_keys(KEY_B, previous=[KEY_A]))
    envelope = bytes(_row(engine, ACC1).credentials_ciphertext)
    engine.dispose()

    db_path = Path(sqlite_url.removeprefix("sqlite:///"))
    files = sorted(db_path.parent.glob(db_path.name + "*"))  # the database plus any -wal / -shm
    assert db_path in files
    blob = b"".join(f.read_bytes() for f in files)
    assert envelope in blob  # the scan does see where the credentials live
    assert USERNAME.encode() not in blob  # the username is inside the envelope too
    for needle in _forbidden(PASSWORD):
        assert needle not in blob


def test_no_plaintext_or_sha1_in_the_stored_row(engine: sa.Engine, keyring_a: KeyRing) -> None:
    _save(engine, keyring_a, ACC1, connected_at=T0)
    with engine.connect() as conn:
        raw = conn.execute(sa.select(creds)).one()
    flat = b"".join(
        bytes(value) if isinstance(value, bytes | memoryview) else str(value).encode("utf-8") for value in raw
    )
    for needle in _forbidden(PASSWORD):
        assert needle not in flat
