#!/usr/bin/env bash
# Installs what `make run` and `make test` need when it is missing (Debian/Ubuntu, apt).
# Quiet and idempotent when everything is there. As root it installs the missing packages
# (one `apt-get update`); otherwise it prints the command to run and exits non-zero.
set -euo pipefail

need=()
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v nginx >/dev/null || need+=(nginx)
[ -f /usr/lib/nginx/modules/ngx_rtmp_module.so ] || need+=(libnginx-mod-rtmp)
# The Sentinel tests run `redis-server --sentinel`, so redis-sentinel is not needed.
command -v redis-server >/dev/null || need+=(redis-server)
command -v srt-live-transmit >/dev/null || need+=(srt-tools)
command -v curl >/dev/null || need+=(curl)
command -v python3 >/dev/null || need+=(python3)
# The demo publisher burns a clock into the picture with drawtext, which needs a font.
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)

[ ${#need[@]} -eq 0 ] && exit 0

if [ "$EUID" -ne 0 ]; then
  echo "missing: ${need[*]}; install them with:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${need[*]}" >&2
  exit 1
fi
echo "installing: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
