#!/usr/bin/env bash
# The whole test suite: the UI's type check, unit tests and build; Rust formatting and lints;
# then every test in the workspace, including the desktop app's end-to-end test.
set -euo pipefail
cd "$(dirname "$0")/.."
# Builds live outside the clone so repeat runs (and fresh clones) reuse them.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/parlor/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# The suite builds once and runs; incremental state would only cost time and disk.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

scripts/install-deps.sh test
echo "== tauri-driver (WebDriver for the app's window)"
# Pinned: an unpinned install picks a 3.0 pre-release.
# Read whole, then searched: `| grep -q` under pipefail can fail on SIGPIPE.
installed=$(cargo install --list)
if ! grep -q '^tauri-driver v2\.1\.0:' <<<"$installed"; then
  cargo install tauri-driver --locked --version 2.1.0
fi

echo "== UI: npm ci, type check, unit tests, build"
npm ci --prefix ui --no-audit --no-fund --loglevel=error
npm run --prefix ui --silent check
npm run --prefix ui --silent test
# The app embeds ui/dist, so the UI is built before any Rust that includes the app.
npm run --prefix ui --silent build
echo "== npm ci (browser interop harness)"
npm ci --prefix tests/interop --no-audit --no-fund --loglevel=error

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked
