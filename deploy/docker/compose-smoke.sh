#!/usr/bin/env bash
# The compose stack for real, on loopback: up, connect the demo emulator's account through the API, sync its
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
CREDENTIAL_ENCRYPTION_KEY="$(docker run --rm --network host "$image" python -c \
  'from iiko_pipeline.warehouse.crypto import generate_key; print(generate_key())')"
export CREDENTIAL_ENCRYPTION_KEY
cleanup() {
  "${compose[@]}" logs --no-color > /tmp/iiko-compose-smoke.log 2>&1 || true
  docker ps -aq --filter label=dagster/run_id | xargs -r docker rm -f >/dev/null 2>&1 || true  # they use a volume
  "${compose[@]}" down -v --remove-orphans >/dev/null 2>&1 || true
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
