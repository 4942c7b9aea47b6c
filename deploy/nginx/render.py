#!/usr/bin/env python3
"""The shipped proxy config (iiko-pipeline.conf) with a deployment's addresses and paths, nothing else changed.

iiko-pipeline.conf is written for a host's /etc/nginx/conf.d (ports 80/443, webservers on 3000/3001, the paths
deploy/README.md names). A container, or a test, needs other ports and paths but must run the very same rules:
this substitutes exactly the lines that name an address or a path and refuses a file in which any of them is
missing or repeated, so the rules cannot drift from what was reviewed. Standard library only: it runs in the
proxy image (deploy/docker/proxy.Dockerfile) and in tests/test_deploy_proxy.py.

    deploy/nginx/render.py --https 127.0.0.1:8443 --http 127.0.0.1:8080 --operators 127.0.0.1:3070 \\
        --viewers 127.0.0.1:3071 --certificate /run/p/tls.crt --key /run/p/tls.key \\
        --operators-htpasswd /run/p/operators.htpasswd --viewers-htpasswd /run/p/viewers.htpasswd \\
        --log-dir /var/log/nginx/ > /etc/nginx/conf.d/iiko-pipeline.conf
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

SHIPPED = Path(__file__).with_name("iiko-pipeline.conf")


def render(text: str, *, http: str, https: str, operators: str, viewers: str, certificate: str, key: str,
           operators_htpasswd: str, viewers_htpasswd: str, log_dir: str, server_name: str | None = None,
           viewers_server_name: str | None = None) -> str:
    """`text` (the shipped file) with each address and path replaced; ValueError naming a pattern not found
    exactly as often as the shipped file has it."""
    log_dir = log_dir if log_dir.endswith("/") else log_dir + "/"
    rules = [
        (r"\blisten 80;", f"listen {http};", 1),
        (r"\blisten 443 ssl;", f"listen {https} ssl;", 2),
        (r"\bserver 127\.0\.0\.1:3000;", f"server {operators};", 1),
        (r"\bserver 127\.0\.0\.1:3001;", f"server {viewers};", 1),
        (r"/etc/ssl/certs/dagster\.example\.com\.pem", certificate, 2),
        (r"/etc/ssl/private/dagster\.example\.com\.key", key, 2),
        (r"/etc/nginx/iiko-pipeline-operators\.htpasswd", operators_htpasswd, 1),
        (r"/etc/nginx/iiko-pipeline-viewers\.htpasswd", viewers_htpasswd, 1),
        (r"/var/log/nginx/", log_dir, 2),
    ]
    if server_name:
        rules.append((r"\bdagster\.example\.com\b(?![-.])", server_name, 2))  # the redirect's and the site's
    if viewers_server_name:
        rules.append((r"\bdagster-view\.example\.com\b", viewers_server_name, 2))
    for pattern, replacement, count in rules:
        text, found = re.subn(pattern, lambda _m, r=replacement: r, text)
        if found != count:
            raise ValueError(f"{SHIPPED.name}: expected {count} x {pattern!r}, found {found}")
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", type=Path, default=SHIPPED)
    for name in ("http", "https", "operators", "viewers", "certificate", "key", "operators-htpasswd",
                 "viewers-htpasswd", "log-dir"):
        p.add_argument(f"--{name}", required=True)
    p.add_argument("--server-name")
    p.add_argument("--viewers-server-name")
    args = vars(p.parse_args(argv))
    source = args.pop("source")
    try:
        sys.stdout.write(render(source.read_text(), **args))
    except ValueError as exc:
        print(f"render.py: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
