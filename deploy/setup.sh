#!/usr/bin/env bash
# Installs what `make run` and `make test` need when it is missing (Debian/Ubuntu, apt; and
# kubernetes-validate from PyPI with pip). Quiet and idempotent when everything is there. As root
# it installs the missing packages (one `apt-get update`); otherwise it prints the commands to
# run and exits non-zero.
set -euo pipefail

need=()
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v nginx >/dev/null || need+=(nginx)
[ -f /usr/lib/nginx/modules/ngx_rtmp_module.so ] || need+=(libnginx-mod-rtmp)
# The Sentinel tests run `redis-server --sentinel`, so redis-sentinel is not needed.
command -v redis-server >/dev/null || need+=(redis-server)
# The cluster tests create the cluster with `redis-cli --cluster create`.
command -v redis-cli >/dev/null || need+=(redis-tools)
command -v srt-live-transmit >/dev/null || need+=(srt-tools)
command -v curl >/dev/null || need+=(curl)
command -v python3 >/dev/null || need+=(python3)
# The demo publisher burns a clock into the picture with drawtext, which needs a font.
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
# tests/tests/browser.rs plays WebRTC in Debian's headless Chromium, driven from Node.
command -v chromium >/dev/null || need+=(chromium)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
# tests/tests/deploy.rs checks the systemd unit and the Kubernetes manifests offline.
command -v systemd-analyze >/dev/null || need+=(systemd)
pip_need=
if ! python3 -c "import kubernetes_validate" >/dev/null 2>&1; then
  pip_need=kubernetes-validate
  python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
fi

[ ${#need[@]} -eq 0 ] && [ -z "$pip_need" ] && exit 0

if [ "$EUID" -ne 0 ]; then
  echo "missing: ${need[*]} $pip_need; install them with:" >&2
  [ ${#need[@]} -eq 0 ] ||
    echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${need[*]}" >&2
  [ -z "$pip_need" ] || echo "  pip install $pip_need" >&2
  exit 1
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ -n "$pip_need" ]; then
  echo "installing from PyPI: $pip_need"
  # Debian's own python3 is externally managed (PEP 668) and needs the override.
  python3 -m pip install -q "$pip_need" 2>/dev/null ||
    python3 -m pip install -q --break-system-packages "$pip_need"
fi
