#!/bin/sh
# Render the shipped proxy rules for this stack, check them, run nginx in the foreground. Secrets (certificate,
# key, password files) are read from $PROXY_SECRETS (mounted read-only); the workers run as www-data, which must
# be able to read the password files (mode 0640 with group www-data, or 0644 inside a private mount).
set -eu
secrets="${PROXY_SECRETS:-/run/iiko-proxy}"
python3 /opt/iiko-proxy/render.py \
  --http "${PROXY_HTTP_LISTEN:-127.0.0.1:8080}" --https "${PROXY_HTTPS_LISTEN:-127.0.0.1:8443}" \
  --operators "${PROXY_OPERATORS_UPSTREAM:-127.0.0.1:3070}" --viewers "${PROXY_VIEWERS_UPSTREAM:-127.0.0.1:3071}" \
  --certificate "$secrets/tls.crt" --key "$secrets/tls.key" \
  --operators-htpasswd "$secrets/operators.htpasswd" --viewers-htpasswd "$secrets/viewers.htpasswd" \
  --log-dir /var/log/nginx/ --server-name "${PROXY_SERVER_NAME:-dagster.example.com}" \
  --viewers-server-name "${PROXY_VIEWERS_SERVER_NAME:-dagster-view.example.com}" \
  > /etc/nginx/conf.d/iiko-pipeline.conf
nginx -t
exec nginx -g 'daemon off;'
