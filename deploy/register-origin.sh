#!/usr/bin/env bash
# Registers an origin that sends no heartbeat of its own (nginx-rtmp) with srs-proxy, every few
# seconds, with the body SRS's heartbeat sends (docs/design.md §3). Run it beside the origin
# (a sidecar in the same pod, or a unit bound to nginx's) so that both restart together.
#
#   deploy/register-origin.sh --proxy http://10.0.0.2:12025 --token secret \
#     --ip 10.0.0.5 --server nginx-1 --rtmp 1935 [--http 8080] [--srt 10080] [--interval 3]
#
# Every option can come from the environment instead: REGISTER_PROXY, REGISTER_TOKEN (or
# PROXY_HTTP_API_AUTH_TOKEN), ORIGIN_IP, SERVER_ID, RTMP_PORT, HTTP_PORT, API_PORT, SRT_PORT,
# INTERVAL. The proxy forgets an origin whose last heartbeat is older than
# PROXY_SERVER_ALIVE_DURATION (30 s by default): keep the interval well below it.
set -euo pipefail

usage() {
  sed -n '2,12s/^# \{0,1\}//p' "$0" >&2
  exit 2
}

proxy=${REGISTER_PROXY:-http://127.0.0.1:12025}
token=${REGISTER_TOKEN:-${PROXY_HTTP_API_AUTH_TOKEN:-}}
ip=${ORIGIN_IP:-127.0.0.1}
server=${SERVER_ID:-nginx-$(hostname)}
rtmp=${RTMP_PORT:-1935}
http=${HTTP_PORT:-}
api=${API_PORT:-}
srt=${SRT_PORT:-}
interval=${INTERVAL:-3}

while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || usage
  case $1 in
    --proxy) proxy=$2 ;;
    --token) token=$2 ;;
    --ip) ip=$2 ;;
    --server) server=$2 ;;
    --rtmp) rtmp=$2 ;;
    --http) http=$2 ;;
    --api) api=$2 ;;
    --srt) srt=$2 ;;
    --interval) interval=$2 ;;
    *) usage ;;
  esac
  shift 2
done

# The values go into JSON unescaped: refuse anything that could break out of a string.
for value in "$ip" "$server" "$rtmp" "$http" "$api" "$srt"; do
  case $value in
    *[!A-Za-z0-9._:-]*) echo "register-origin: invalid value '$value'" >&2; exit 2 ;;
  esac
done
[ -n "$rtmp" ] || { echo "register-origin: an RTMP port is required" >&2; exit 2; }

# One identity (server/service/pid) for the helper's whole life: a new service or pid would be
# a restarted origin, whose streams the proxy moves away (docs/design.md §3).
service=$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')
pid=$$

body="{\"device_id\":\"register-origin\",\"ip\":\"$ip\",\"server\":\"$server\""
body+=",\"service\":\"$service\",\"pid\":\"$pid\",\"rtmp\":[\"$rtmp\"]"
[ -z "$http" ] || body+=",\"http\":[\"$http\"]"
[ -z "$api" ] || body+=",\"api\":[\"$api\"]"
[ -z "$srt" ] || body+=",\"srt\":[\"udp://0.0.0.0:$srt\"]"
body+="}"

auth=()
[ -z "$token" ] || auth=(-H "Authorization: Bearer $token")
url="${proxy%/}/api/v1/srs/register"
echo "register-origin: $server/$service/$pid at $ip every ${interval}s to $url"
while true; do
  reply=$(curl -sS -m 3 -X POST "$url" "${auth[@]}" -H "Content-Type: application/json" \
    -d "$body" -w ' HTTP %{http_code}' 2>&1) || true
  case $reply in
    *'"code":0'*' HTTP 200') ;;
    *) echo "register-origin: register failed: $reply; retrying" >&2 ;;
  esac
  sleep "$interval"
done
