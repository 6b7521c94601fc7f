#!/usr/bin/env bash
# Starts srs-proxy on the ports of the SRS docs plus two srs-origin processes that register by
# heartbeat, prints commands to try, and stops everything on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release}
pids=()
cleanup() {
  trap - INT TERM EXIT
  echo; echo "stopping..."
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

env PROXY_RTMP_SERVER=1935 PROXY_HTTP_SERVER=8080 PROXY_HTTP_API=1985 \
    PROXY_WEBRTC_SERVER=8000 PROXY_SRT_SERVER=10080 PROXY_SYSTEM_API=12025 \
    PROXY_LOAD_BALANCER_TYPE=memory "$BIN/srs-proxy" &
pids+=($!)
sleep 0.5
for i in 1 2; do
  env ORIGIN_RTMP_SERVER=127.0.0.1:1935$i ORIGIN_HTTP_SERVER=127.0.0.1:808$i \
      ORIGIN_HTTP_API=127.0.0.1:1985$i ORIGIN_SRT_SERVER=127.0.0.1:1008$i ORIGIN_DEVICE_ID=origin$i \
      ORIGIN_REGISTER_URL=http://127.0.0.1:12025/api/v1/srs/register "$BIN/srs-origin" &
  pids+=($!)
done
sleep 1
cat <<'MSG'

srs-proxy is up (RTMP 1935, HTTP 8080, API 1985, system API 12025) with two origins
(RTMP 19351/19352) registered by heartbeat. Try, in another terminal:

  # publish a test pattern through the proxy
  ffmpeg -re -f lavfi -i testsrc=size=640x360:rate=25 -f lavfi -i sine=frequency=440 \
    -c:v libx264 -preset veryfast -tune zerolatency -g 50 -c:a aac -f flv rtmp://127.0.0.1/live/livestream

  # play it through the proxy
  ffplay rtmp://127.0.0.1/live/livestream
  ffplay http://127.0.0.1:8080/live/livestream.flv
  ffplay http://127.0.0.1:8080/live/livestream.m3u8
  ffplay http://127.0.0.1:8080/live/livestream.ts
  ffprobe -v error -show_streams http://127.0.0.1:8080/live/livestream.flv

  # which origin owns what
  curl -s http://127.0.0.1:12025/api/v1/origins

Ctrl-C stops everything.
MSG
wait
