#!/usr/bin/env bash
# The compose stack for real, on loopback: up, check that the Dagster UI answers only through the proxy with a
# password (operators' and viewers' sites), connect the demo emulator's account through the API, sync its
# restaurants (the API queues the run, the daemon's DockerRunLauncher runs it in a container of its own), check
# the answer, tear everything down (volumes included). Needs the images (deploy/docker/smoke.sh builds the app
# image; SKIP_BUILD=1 skips building) and a Docker daemon; exits 77 when none answers.
set -euo pipefail
cd "$(dirname "$0")"
if ! docker info >/dev/null 2>&1; then
  echo "SKIP: no Docker daemon answers (start one: dockerd --bridge=none --iptables=false)" >&2
  exit 77
fi
image="${IIKO_IMAGE:-iiko-pipeline:dev}"
if [ -z "${SKIP_BUILD:-}" ]; then
  ./build-base.sh
  (cd ../.. && docker build --network host -f deploy/docker/Dockerfile -t "$image" .)
fi
compose=(docker-compose -f compose.yaml -p iiko-smoke)
random() { python3 -c 'import secrets; print(secrets.token_urlsafe(24))'; }
export IIKO_IMAGE="$image" POSTGRES_PASSWORD="$(random)" API_TOKEN="$(random)"
export DOCKER_GID="$(stat -c %g /var/run/docker.sock)"
# the proxy's secrets: a self-signed certificate and one user per site (made as deploy/README.md says)
secrets="$(mktemp -d /tmp/iiko-proxy-secrets.XXXXXX)"
chmod 755 "$secrets"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=dagster.example.com \
  -addext "subjectAltName=DNS:dagster.example.com,DNS:dagster-view.example.com" \
  -keyout "$secrets/tls.key" -out "$secrets/tls.crt" 2>/dev/null
operator_password="$(random)" viewer_password="$(random)"
printf 'olga:%s\n' "$(printf %s "$operator_password" | openssl passwd -6 -stdin)" > "$secrets/operators.htpasswd"
printf 'viktor:%s\n' "$(printf %s "$viewer_password" | openssl passwd -6 -stdin)" > "$secrets/viewers.htpasswd"
chmod 644 "$secrets"/*.htpasswd
export PROXY_SECRETS_DIR="$secrets"
CREDENTIAL_ENCRYPTION_KEY="$(docker run --rm --network host "$image" python -c \
  'from iiko_pipeline.warehouse.crypto import generate_key; print(generate_key())')"
export CREDENTIAL_ENCRYPTION_KEY
cleanup() {
  "${compose[@]}" logs --no-color > /tmp/iiko-compose-smoke.log 2>&1 || true
  docker ps -aq --filter label=dagster/run_id | xargs -r docker rm -f >/dev/null 2>&1 || true  # they use a volume
  "${compose[@]}" down -v --remove-orphans >/dev/null 2>&1 || true
  rm -rf "$secrets"
}
trap cleanup EXIT
"${compose[@]}" up -d --build

api="http://127.0.0.1:${API_PORT:-8070}"
for _ in $(seq 1 90); do
  curl -fsS "$api/health" >/dev/null 2>&1 && curl -fsS "http://127.0.0.1:${WEBSERVER_PORT:-3070}/server_info" >/dev/null 2>&1 && break
  sleep 2
done
curl -fsS "$api/health" >/dev/null
echo "ok: the API and the Dagster webserver answer"

https="${PROXY_HTTPS_LISTEN:-127.0.0.1:8443}"
site() {  # site NAME USER:PASSWORD|- PATH -> the HTTP status through the proxy
  local auth=(); [ "$2" = - ] || auth=(-u "$2")
  curl -sS -o /dev/null -w '%{http_code}' --cacert "$secrets/tls.crt" "${auth[@]}" \
    --resolve "$1:${https##*:}:${https%:*}" "https://$1:${https##*:}$3"
}
for _ in $(seq 1 30); do [ "$(site dagster.example.com - /server_info)" = 401 ] && break; sleep 1; done
[ "$(site dagster.example.com - /server_info)" = 401 ] || { echo "FAIL: the proxy let a request without password through" >&2; exit 1; }
[ "$(site dagster.example.com olga:wrong /server_info)" = 401 ] || { echo "FAIL: a wrong password got through" >&2; exit 1; }
[ "$(site dagster.example.com "viktor:$viewer_password" /server_info)" = 401 ] || { echo "FAIL: a viewer reached the operators' site" >&2; exit 1; }
[ "$(site dagster.example.com "olga:$operator_password" /server_info)" = 200 ] || { echo "FAIL: an operator was refused" >&2; exit 1; }
[ "$(site dagster-view.example.com "viktor:$viewer_password" /server_info)" = 200 ] || { echo "FAIL: a viewer was refused" >&2; exit 1; }
echo "ok: the Dagster UI answers through the proxy only with the site's password (operators and viewers)"

account="$(python3 -c 'import uuid; print(uuid.uuid4())')"
auth=(-H "Authorization: Bearer $API_TOKEN" -H "Content-Type: application/json")
base="$api/api/v1/accounts/$account/integrations/iiko"
body="{\"username\": \"demo\", \"password\": \"${EMULATOR_PASSWORD:-demo-пароль}\", \"base_url\": \"http://127.0.0.1:${EMULATOR_PORT:-18090}\"}"
curl -fsS "${auth[@]}" -X POST "$base/connect" -d "$body" | grep -q '"is_connected":true'
echo "ok: account $account connected through the API"

answer="$(curl -sS "${auth[@]}" -X POST --max-time 600 "$base/sync/restaurants" -w '\n%{http_code}')"
code="${answer##*$'\n'}"
echo "sync answer ($code): ${answer%$'\n'*}"
[ "$code" = 200 ] || { echo "FAIL: the sync answered $code (logs: /tmp/iiko-compose-smoke.log)" >&2; exit 1; }
runs="$(docker ps -aq --filter label=dagster/run_id | wc -l)"
[ "$runs" -ge 1 ] || { echo "FAIL: no run container was started" >&2; exit 1; }
echo "ok: the sync ran in $runs run container(s) started by DockerRunLauncher"
