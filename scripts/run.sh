#!/usr/bin/env bash
# Runs Parlor: builds the UI, the desktop app and the signaling server (release), starts a
# local server on 127.0.0.1:7700 (SQLite in the platform data folder, serving the web app at
# http://127.0.0.1:7700/) unless PARLOR_SERVER names another one or one already answers there,
# and opens the app pointed at it.
# Extra arguments go to parlor-server (see `parlor-server --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/parlor/target}"
scripts/install-deps.sh run

if [ -z "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
  echo "run.sh: no display (DISPLAY or WAYLAND_DISPLAY) to open the window on" >&2
  exit 2
fi

npm ci --prefix ui --no-audit --no-fund --loglevel=error
npm run --prefix ui --silent build
cargo build --release --locked -p parlor-signaling --bin parlor-server -p parlor-app --bin parlor-app

healthy() { (exec 3<>"/dev/tcp/127.0.0.1/7700" && printf 'GET /healthz HTTP/1.0\r\n\r\n' >&3 && head -c 12 <&3 | grep -q 200) 2>/dev/null; }

if [ -z "${PARLOR_SERVER:-}" ]; then
  export PARLOR_SERVER=ws://127.0.0.1:7700/ws
  if ! healthy; then
    "$CARGO_TARGET_DIR/release/parlor-server" --listen 127.0.0.1:7700 --web-dir ui/dist-web "$@" &
    server=$!
    trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null' EXIT
    for _ in $(seq 1 100); do healthy && break; sleep 0.1; done
    healthy || { echo "run.sh: the local server did not start" >&2; exit 1; }
    echo "Parlor: the web app is at http://127.0.0.1:7700/"
  fi
fi
echo "Parlor: server $PARLOR_SERVER"
"$CARGO_TARGET_DIR/release/parlor-app"
