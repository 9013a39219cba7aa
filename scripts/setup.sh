#!/usr/bin/env bash
# Sets up a fresh Debian machine for emolive: apt packages, .venv, Python packages.
# Idempotent: re-running only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
APT_UPDATED=""
# Installs those of the named apt packages that are missing (the package lists are refreshed once).
apt_install_missing() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  echo "[setup] apt install ${missing[*]}"
  [ -n "$APT_UPDATED" ] || { $SUDO apt-get update -qq; APT_UPDATED=1; }
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
}

apt_install_missing ffmpeg espeak-ng libespeak-ng1 sox libportaudio2 chromium chromium-driver

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=(.venv/bin/python -m pip install -q --disable-pip-version-check)
stamp=.venv/.emolive-deps
want=$(cat requirements.txt requirements-pipecat.txt pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[setup] installing Python packages into .venv"
  "${PIP[@]}" --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
  # CPU build of torch first, so nothing later pulls the CUDA build.
  "${PIP[@]}" torch==2.13.0
  "${PIP[@]}" -r requirements.txt
  "${PIP[@]}" --no-deps mediapipe==0.10.21 fer==25.10.3
  # The pipecat extra (emolive.pipecat): without its protobuf>=5 wish (see requirements-pipecat.txt).
  "${PIP[@]}" -r requirements-pipecat.txt
  "${PIP[@]}" --no-deps pipecat-ai==1.14.0
  # The livekit extra (emolive.livekit), held to the protobuf and numpy the rest needs (see pyproject.toml).
  "${PIP[@]}" livekit==1.0.25 livekit-agents==1.1.7 "protobuf<5" "numpy<2"
  "${PIP[@]}" --no-deps -e .
  echo "$want" > "$stamp"
fi

# three.js for the 3D-client tests (tests/streaming/test_talkinghead_browser.py): node_modules/ at the root.
THREE_VERSION=0.187.0
if ! command -v npm >/dev/null 2>&1; then
  echo "[setup] apt install npm"
  (DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq npm >/dev/null) || true
fi
if command -v npm >/dev/null 2>&1; then
  if [ "$(node -p "require('./node_modules/three/package.json').version" 2>/dev/null)" != "$THREE_VERSION" ]; then
    echo "[setup] npm install three@$THREE_VERSION"
    npm install --no-save --no-package-lock --no-audit --no-fund --prefix . "three@$THREE_VERSION" >/dev/null
  fi
else
  echo "[setup] npm could not be installed: the three.js browser tests will be skipped"
fi

# GStreamer's WebRTC stack for the system Python, for the GStreamer WHIP / WHEP interop test
# (tests/streaming/test_gstreamer_interop.py, skipped without it).
apt_install_missing python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0 gir1.2-gst-plugins-bad-1.0 \
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-nice || \
  echo "[setup] GStreamer could not be installed: the GStreamer interop test will be skipped"

# Janus and its WHIP frontend simple-whip-server, for the SFU interop test (tests/streaming/test_whip_publish_janus.py,
# skipped without them). simple-whip-server is unpacked, not installed: its package wants Debian's nodejs, which
# conflicts with other builds of node; its sources go to build/simple-whip-server/src, its modules from npm.
if ! command -v janus >/dev/null 2>&1; then
  echo "[setup] apt install janus"
  (DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends janus >/dev/null) || \
    echo "[setup] janus could not be installed: the Janus interop test will be skipped"
fi
SWS=build/simple-whip-server
if command -v npm >/dev/null 2>&1 && [ ! -d "$SWS/node_modules/express" ]; then
  echo "[setup] simple-whip-server into $SWS"
  mkdir -p "$SWS/deb"
  if (cd "$SWS/deb" && apt-get download -qq simple-whip-server >/dev/null 2>&1); then
    dpkg -x "$SWS"/deb/simple-whip-server_*.deb "$SWS/deb/root"
    rm -rf "$SWS/src" && cp -r "$SWS/deb/root/usr/share/simple-whip-server/src" "$SWS/src"
    rm -f "$SWS/src/config.js"  # a link to /etc; the test writes its own
    npm install --no-save --no-package-lock --no-audit --no-fund --prefix "$SWS" \
      express@4 cors@2 colors@1.4.0 debug@4 async@3 websocket@1 >/dev/null || true
  else
    echo "[setup] simple-whip-server could not be downloaded: the Janus interop test will be skipped"
  fi
fi
