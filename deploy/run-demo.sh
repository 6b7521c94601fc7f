#!/usr/bin/env bash
# Starts srs-proxy on the ports of the SRS docs, two srs-origin processes that register by
# heartbeat, and a test publisher (ffmpeg test pattern with a clock, published through the proxy
# over RTMP); waits until the stream plays, prints its play URLs, and stops everything on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release}
LOGS=${LOGS:-target/demo}
mkdir -p "$LOGS"
pids=()
cleanup() {
  trap - INT TERM EXIT
  echo; echo "stopping..."
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

# Waits up to $1 seconds for the command after it to succeed.
wait_for() {
  local limit=$1; shift
  for _ in $(seq $((limit * 4))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done
  return 1
}
two_origins() {
  [ "$(curl -sf http://127.0.0.1:12025/api/v1/origins | grep -o '"alive":true' | wc -l)" -ge 2 ]
}

env PROXY_RTMP_SERVER=1935 PROXY_HTTP_SERVER=8080 PROXY_HTTP_API=1985 \
    PROXY_WEBRTC_SERVER=8000 PROXY_SRT_SERVER=10080 PROXY_SYSTEM_API=12025 \
    PROXY_LOAD_BALANCER_TYPE=memory "$BIN/srs-proxy" >"$LOGS/proxy.out" 2>"$LOGS/proxy.log" &
pids+=($!)
wait_for 10 curl -sf http://127.0.0.1:12025/readyz || { echo "srs-proxy did not start:"; tail "$LOGS/proxy.log"; exit 1; }
for i in 1 2; do
  # Ports 1935i, 808i, 1985i, 1008i (SRT), 800i (WebRTC): clear of the proxy's.
  env ORIGIN_RTMP_SERVER=127.0.0.1:1935$i ORIGIN_HTTP_SERVER=127.0.0.1:808$i \
      ORIGIN_HTTP_API=127.0.0.1:1985$i ORIGIN_SRT_SERVER=127.0.0.1:1008$i \
      ORIGIN_WEBRTC_SERVER=127.0.0.1:800$i \
      ORIGIN_DEVICE_ID=origin$i ORIGIN_REGISTER_URL=http://127.0.0.1:12025/api/v1/srs/register \
      "$BIN/srs-origin" >"$LOGS/origin$i.out" 2>"$LOGS/origin$i.log" &
  pids+=($!)
done
wait_for 20 two_origins || { echo "the origins did not register:"; tail "$LOGS"/origin*.log; exit 1; }

# A clock burned into the picture shows the latency; testsrc's own frame counter without drawtext.
font=/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
video=testsrc=size=640x360:rate=25
# The list is read whole first: `grep -q` closing the pipe early would fail it under pipefail.
filters=$(ffmpeg -hide_banner -filters 2>/dev/null || true)
if [ -f "$font" ] && grep -qw drawtext <<<"$filters"; then
  video="$video,drawtext=fontfile=$font:text='%{localtime\:%T}':fontsize=48:fontcolor=white:box=1:boxcolor=black@0.6:x=20:y=20"
fi
ffmpeg -hide_banner -loglevel error -re -f lavfi -i "$video" -f lavfi -i sine=frequency=440 \
  -c:v libx264 -preset veryfast -tune zerolatency -g 50 -pix_fmt yuv420p -c:a aac \
  -f flv rtmp://127.0.0.1:1935/live/livestream >"$LOGS/publisher.log" 2>&1 &
pids+=($!)
wait_for 30 ffprobe -v error -rw_timeout 5000000 -show_streams http://127.0.0.1:8080/live/livestream.flv \
  || { echo "the test stream does not play:"; tail "$LOGS/publisher.log" "$LOGS/proxy.log"; exit 1; }
# srs-origin serves an SRT-published stream over SRT and HTTP-TS (not as RTMP), so the SRT
# demo is a second publisher, over SRT through the proxy.
ffmpeg -hide_banner -loglevel error -re -f lavfi -i "$video" -f lavfi -i sine=frequency=660 \
  -c:v libx264 -preset veryfast -tune zerolatency -g 50 -pix_fmt yuv420p -c:a aac \
  -f mpegts 'srt://127.0.0.1:10080?streamid=#!::r=live/srt,m=publish' >"$LOGS/srt-publisher.log" 2>&1 &
pids+=($!)
wait_for 30 ffprobe -v error -rw_timeout 5000000 -show_streams http://127.0.0.1:8080/live/srt.ts \
  || { echo "the SRT test stream does not play:"; tail "$LOGS/srt-publisher.log" "$LOGS/proxy.log"; exit 1; }

cat <<MSG

srs-proxy is up (RTMP 1935, HTTP 8080, API 1985, system API 12025, SRT 10080) with two origins
(RTMP 19351/19352, SRT 10081/10082) registered by heartbeat, and a test pattern with a clock
published through the proxy as live/livestream (RTMP) and live/srt (SRT). Play them through the
proxy:

  ffplay rtmp://127.0.0.1/live/livestream
  ffplay http://127.0.0.1:8080/live/livestream.flv
  ffplay http://127.0.0.1:8080/live/livestream.ts
  ffplay http://127.0.0.1:8080/live/livestream.m3u8
  ffplay 'srt://127.0.0.1:10080?streamid=#!::r=live/srt,m=request'
  ffplay http://127.0.0.1:8080/live/srt.ts

  # which origin owns what, and the sessions on this proxy
  curl -s http://127.0.0.1:12025/api/v1/origins
  curl -s http://127.0.0.1:12025/api/v1/streams

Logs are in $LOGS/. Ctrl-C stops everything.
MSG
wait
