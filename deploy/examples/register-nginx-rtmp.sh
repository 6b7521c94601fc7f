#!/usr/bin/env bash
# Registers an nginx-rtmp origin (or any origin without a heartbeat of its own) with srs-proxy,
# every 9 s, as SRS's heartbeat would (docs/design.md §3). Run it beside nginx, e.g. as a sidecar.
#   REGISTER_URL=http://127.0.0.1:12025/api/v1/srs/register ORIGIN_IP=10.0.0.5 \
#     RTMP_PORT=1935 ./register-nginx-rtmp.sh
set -u
url=${REGISTER_URL:-http://127.0.0.1:12025/api/v1/srs/register}
ip=${ORIGIN_IP:-127.0.0.1}
server=${SERVER_ID:-nginx-$(hostname)}
service=$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')
while true; do
  curl -sS -m 3 -X POST "$url" -H "Content-Type: application/json" \
    -d "{\"device_id\":\"nginx\",\"ip\":\"$ip\",\"server\":\"$server\",\"service\":\"$service\",\"pid\":\"$$\",\"rtmp\":[\"${RTMP_PORT:-1935}\"]}" \
    >/dev/null || echo "register failed; retrying" >&2
  sleep "${INTERVAL:-9}"
done
