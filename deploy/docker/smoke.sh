#!/usr/bin/env bash
# Builds the base and the code location's image, then checks the image as a deployment uses it, on loopback
# only (host networking; Docker's bridge network is never used):
#   1. it runs as the non-root user iiko (uid 10001);
#   2. the main job end to end inside it (`iiko-pipeline demo`: emulator, SQLite, a Dagster run per sync);
#   3. the Helm deployment's run launcher (deploy/helm/values.yaml) is one the image's dagster-k8s accepts;
#   4. its default command, the code server, serves the definitions over gRPC (health check).
# Needs a running Docker daemon (e.g. `dockerd --bridge=none --iptables=false`), debootstrap and root.
#   deploy/docker/smoke.sh            (SKIP_BUILD=1 reuses images already built)
set -euo pipefail
cd "$(dirname "$0")/../.."
image="${IMAGE:-iiko-pipeline:dev}"
if ! docker info >/dev/null 2>&1; then
  echo "SKIP: no Docker daemon answers (start one: dockerd --bridge=none --iptables=false)" >&2
  exit 77
fi
if [ -z "${SKIP_BUILD:-}" ]; then
  deploy/docker/build-base.sh
  docker build --network host -f deploy/docker/Dockerfile -t "$image" .
fi

uid=$(docker run --rm --network host "$image" id -u)
[ "$uid" = 10001 ] || { echo "FAIL: the image runs as uid $uid, not 10001" >&2; exit 1; }
echo "ok: runs as uid $uid"

docker run --rm --network host "$image" iiko-pipeline demo --scale tiny --days 3 --port 0 | tee /tmp/iiko-smoke-demo.log
grep -q "^invoices" /tmp/iiko-smoke-demo.log || { echo "FAIL: the demo synced no invoices" >&2; exit 1; }
echo "ok: the main job ran end to end inside the image"

docker run --rm --network host -v "$PWD/deploy/helm:/opt/iiko/helm:ro" "$image" \
  python /opt/iiko/helm/check_run_launcher.py /opt/iiko/helm/values.yaml

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
name="iiko-smoke-code-$port"
docker run -d --rm --name "$name" --network host "$image" \
  dagster code-server start -m iiko_pipeline.definitions -h 127.0.0.1 -p "$port" >/dev/null
trap 'docker stop "$name" >/dev/null 2>&1 || true' EXIT
for _ in $(seq 1 60); do
  if docker exec "$name" dagster api grpc-health-check -p "$port" -h 127.0.0.1 >/dev/null 2>&1; then
    echo "ok: the code server answers on 127.0.0.1:$port"
    exit 0
  fi
  sleep 2
done
docker logs "$name" >&2 || true
echo "FAIL: the code server did not answer within 120 s" >&2
exit 1
