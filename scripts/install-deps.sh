#!/usr/bin/env bash
# Installs the Debian packages a Parlor step needs, only those missing. Usage:
#   scripts/install-deps.sh test|run
# Nothing is assumed but Rust, Node and gcc. Needs root (or sudo) when something is missing.
set -euo pipefail

packages=()
# Building: nasm gives OpenH264 its SIMD code (without it, it silently builds slow); cmake
# builds libopus; clang/libclang-dev let nokhwa generate its V4L2 bindings; libasound2-dev is
# what cpal links on Linux; autoconf, automake and libtool build WebRTC's audio processing
# module (echo cancellation) from source; libvpx-dev is VP8 (Debian's libvpx, found through
# pkg-config by env-libvpx-sys).
# libwebkit2gtk-4.1-dev is the desktop app's web view (it pulls GTK 3 and libsoup 3), and
# fonts-wqy-zenhei gives it Chinese, Japanese and Korean glyphs.
build=(nasm cmake pkg-config libvpx-dev clang libclang-dev libasound2-dev autoconf automake libtool libwebkit2gtk-4.1-dev fonts-wqy-zenhei)
case "${1:-test}" in
  # openssl: the TURN credential test checks our HMAC against openssl's.
  # chromium, iproute2: the browser interop tests (Chromium in a loopback-only namespace);
  # firefox-esr and sqlite3 (to store its camera/microphone permission) for Firefox's.
  # pulseaudio, pulseaudio-utils: a user-space sound server for the real-device audio test.
  # coturn: the TURN server the relay-only call test starts on loopback.
  # xvfb, webkit2gtk-driver: the desktop app's end-to-end test (a real window on a virtual
  # display, driven through WebKitWebDriver).
  # systemd: systemd-analyze checks deploy/parlor-server.service (nothing is started).
  # dbus-daemon: a private session bus for the notification-click test.
  # alsa-utils: its recordings of a person's voice (speaker-test's channel names) for the voice
  # processing test.
  test) packages+=("${build[@]}" openssl chromium firefox-esr sqlite3 iproute2 nftables pulseaudio pulseaudio-utils coturn
                   xvfb webkit2gtk-driver systemd dbus-daemon alsa-utils) ;;
  run) packages+=("${build[@]}") ;;
  *) echo "usage: $0 test|run" >&2; exit 2 ;;
esac

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "installing: ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
