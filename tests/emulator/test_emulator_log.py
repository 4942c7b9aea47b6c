"""The request log, the serve() entry point and the data scales."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest
import requests
from emulator_helpers import TIMEOUT, Api, children, parse, sha1

from iiko_pipeline.emulator import SCALES, EmulatorConfig, EmulatorServer

ROOT = Path(__file__).resolve().parents[2]


def test_log_aggregates_and_records(api: Api) -> None:
    requests.get(api.url("auth"), params={"login": api.login_name, "pass": sha1("wrong")}, timeout=TIMEOUT)
    tok = api.login()
    api.get("corporation/departments", tok)
    api.invoices(tok, "2024-01-01", "2024-01-07")
    api.invoices(tok, "2024-01-08", "2024-01-14")
    api.get("suppliers")  # no key
    api.logout(tok)

    log = api.emu.state.log
    assert (log.logins, log.logouts, log.failed_logins) == (1, 1, 1)
    assert log.max_concurrency == 1
    assert log.max_token_concurrency == 1
    assert log.active_tokens == 0
    assert log.summary()["logins"] == log.summary()["logouts"] == 1
    assert log.windows == [("2024-01-01", "2024-01-07"), ("2024-01-08", "2024-01-14")]
    exports = log.records("documents/export/incomingInvoice")
    assert all(r.key_present and r.token == "t1" and r.status == 200 for r in exports)
    assert all(r.ended is not None and r.ended >= r.started for r in exports)
    nokey = log.records("suppliers")[0]
    assert (nokey.key_present, nokey.status) == (False, 401)

    data = api.control("GET", "log").json()
    agg = data["aggregates"]
    assert (agg["logins"], agg["logouts"], agg["failed_logins"], agg["active_tokens"]) == (1, 1, 1, 0)
    assert agg["max_concurrency"] == 1 and agg["max_concurrency_per_token"] == 1
    assert [r["endpoint"] for r in data["requests"]] == [
        "auth", "auth", "corporation/departments", "documents/export/incomingInvoice",
        "documents/export/incomingInvoice", "suppliers", "logout"]
    assert data["requests"][3]["window"] == ["2024-01-01", "2024-01-07"]

    # Never a secret: no password, no hash, no token anywhere in the log.
    dumped = json.dumps(data, ensure_ascii=False) + repr(log.records())
    for secret in (api.password, sha1(api.password), sha1("wrong"), tok):
        assert secret not in dumped

    assert api.control("DELETE", "log").json() == {"ok": True}
    assert api.control("GET", "log").json()["requests"] == []
    assert log.logins == 0


def test_serve_prints_one_line_and_stops_on_sigterm() -> None:
    code = ("from iiko_pipeline.emulator import EmulatorConfig, serve\n"
            "serve(EmulatorConfig(host='127.0.0.1', port=0))\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("listening on http://127.0.0.1:")
        url = line.removeprefix("listening on ")
        assert requests.get(f"{url}/_emulator/health", timeout=TIMEOUT).json() == {"ok": True}
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        assert out == ""
    finally:
        if proc.poll() is None:
            proc.kill()


def test_seed_scale_matches_the_brief() -> None:
    cfg = EmulatorConfig(port=0, scale="seed", seed=1, today=date(2024, 6, 30))
    with EmulatorServer(cfg) as emu:
        api = Api(emu)
        tok = api.login()
        try:
            deps = children(parse(api.get("corporation/departments", tok).content))
            assert sum(d["type"] == "DEPARTMENT" for d in deps) == 31
            sups = children(parse(api.get("suppliers", tok).content))
            assert len(sups) == 658
            assert sum(s["deleted"] == "true" for s in sups) > 10
            assert sum(s.get("representsStore") == "true" for s in sups) > 10
            stores = children(parse(api.get("corporation/stores", tok).content))
            assert 2.5 <= len(stores) / 31 <= 3.6
            day = emu.state.dataset.invoices(date(2024, 6, 3), date(2024, 6, 3))
            assert 31 * 5 <= len(day) <= 31 * 20
            lines = [len(d.items) for d in day]
            assert min(lines) >= 1 and max(lines) <= 41  # 40 lines + an optional delivery line
            assert len(parse(api.invoices(tok, "2024-06-03", "2024-06-03").content)) == len(day)
        finally:
            api.logout(tok)


def test_large_scale_reaches_a_million_lines_a_year() -> None:
    scale = SCALES["large"]
    assert (scale.restaurants, scale.suppliers) == (40, 900)
    emu = EmulatorServer(EmulatorConfig(port=0, scale="large", today=date(2024, 6, 30)))  # no need to serve
    ds = emu.state.dataset
    assert len(ds.restaurants()) == 40 and len(ds.suppliers()) == 900
    sample = [date(2024, 6, 30) - timedelta(days=n * 50) for n in range(3)]
    lines = sum(len(doc.items) for day in sample for doc in ds.invoices(day, day))
    assert lines / len(sample) * 365 >= 1_000_000


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_optional_https_with_a_self_signed_certificate(tmp_path: Path) -> None:
    import datetime as dt
    import ipaddress

    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    with EmulatorServer(EmulatorConfig(port=0, certfile=str(certfile), keyfile=str(keyfile))) as emu:
        assert emu.url.startswith("https://")
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(f"{emu.url}/resto/get_server_info.jsp", timeout=TIMEOUT)
        r = requests.get(f"{emu.url}/resto/get_server_info.jsp", timeout=TIMEOUT, verify=False)  # noqa: S501
        assert r.status_code == 200
        r = requests.get(f"{emu.url}/resto/get_server_info.jsp", timeout=TIMEOUT, verify=str(certfile))
        assert parse(r.content).tag == "r"
