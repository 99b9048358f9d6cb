#!/usr/bin/env bash
# Runs Parlor locally. Today that is the signaling server on 127.0.0.1:7700 with its SQLite
# database in the platform data directory; the desktop app will be started from here too once it
# exists. Extra arguments go to parlor-server (see `--help`).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/parlor/target}"
scripts/install-deps.sh run
cargo build --release --locked -p parlor-signaling --bin parlor-server
exec "$CARGO_TARGET_DIR/release/parlor-server" "$@"
