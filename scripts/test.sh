#!/usr/bin/env bash
# The full test suite, from a fresh Debian machine: installs what the tests need (Debian packages,
# tansu, rivven-schema, the Python consumer), checks formatting and lints, validates
# docker-compose.yml, then runs every test: unit, integration against tansu + rivven-schema + the
# simulator (each test starts its own broker and registry on free loopback ports), restart/crash
# tests and the Python confluent-kafka interop check.
set -euo pipefail
cd "$(dirname "$0")/.."

TANSU_VERSION=0.6.0
RIVVEN_SCHEMA_VERSION=0.0.22
export PATH="$HOME/.cargo/bin:$PATH"

step() { printf '\n==> %s\n' "$*"; }

# A fresh machine builds everything once: incremental compilation only costs disk there (it kept
# gigabytes of session files beside ~40 test binaries). Set CARGO_INCREMENTAL=1 to keep it.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
disk() { df -h . | awk 'NR == 2 {print "disk: " $4 " free of " $2}'; }
disk

need_apt=()
command -v curl >/dev/null || need_apt+=(curl)
command -v docker-compose >/dev/null || need_apt+=(docker-compose)
command -v make >/dev/null || need_apt+=(make)
command -v perl >/dev/null || need_apt+=(perl)
dpkg -s libssl-dev >/dev/null 2>&1 || need_apt+=(libssl-dev)
dpkg -s pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
# promtool (Debian's prometheus package): tests/deploy.rs checks and unit-tests the alert rules.
command -v promtool >/dev/null || need_apt+=(prometheus)
if [ ${#need_apt[@]} -gt 0 ]; then
  step "apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

installed() { "$1" --version 2>/dev/null | grep -q "$2"; }
# tansu with its memory engine (dynostore) and its SQLite engine (libsql: the broker-outage test
# restarts a broker that keeps its data). A stamp records the features an installed tansu was
# built with, so an older install without libsql is rebuilt.
TANSU_FEATURES=dynostore,libsql
tansu_stamp="$HOME/.cargo/.ccdc-tansu-$TANSU_VERSION-features"
tansu_ready() { installed tansu "$TANSU_VERSION" && [ "$(cat "$tansu_stamp" 2>/dev/null)" = "$TANSU_FEATURES" ]; }
# tansu takes 7-15 minutes to build: build it in the background while the rest installs.
tansu_pid=""
if ! tansu_ready; then
  step "cargo install tansu $TANSU_VERSION --features $TANSU_FEATURES (background)"
  ( cargo install tansu --locked --force --version "$TANSU_VERSION" --features "$TANSU_FEATURES" \
      && echo "$TANSU_FEATURES" >"$tansu_stamp" ) >target-tansu-install.log 2>&1 &
  tansu_pid=$!
fi
if ! installed rivven-schema "$RIVVEN_SCHEMA_VERSION"; then
  step "cargo install rivven-schema $RIVVEN_SCHEMA_VERSION"
  cargo install rivven-schema --locked --version "$RIVVEN_SCHEMA_VERSION"
fi

step "pip install the interop consumer and the consumer recipe of examples/python"
python3 -m pip install -q --disable-pip-version-check -r tests/interop/requirements.txt \
  -r examples/python/requirements.txt

# The benchmarks' P5 baseline, a straightforward Python poller (benches/python_poller/).
step "pip install the Python poller of the benchmarks"
python3 -m pip install -q --disable-pip-version-check -r benches/python_poller/requirements.txt

# kubernetes-validate bundles Kubernetes' JSON schemas (it works offline): tests/deploy.rs
# validates deploy/kubernetes/ with it.
step "pip install the Kubernetes manifest validator"
python3 -m pip install -q --disable-pip-version-check kubernetes-validate==1.37.0

step "validate docker-compose.yml"
docker-compose -f docker-compose.yml config -q

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --all-targets --locked -- -D warnings

step "cargo doc -D warnings (the module map in lib.rs and every intra-doc link resolve)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --locked

step "the lean production build (no simulator) compiles"
cargo check --locked --no-default-features --bins

step "build tests"
cargo test --locked --all-targets --no-run
disk

if [ -n "$tansu_pid" ]; then
  step "waiting for the tansu build"
  if ! wait "$tansu_pid"; then tail -50 target-tansu-install.log; exit 1; fi
fi
tansu_ready || { echo "tansu $TANSU_VERSION with $TANSU_FEATURES missing"; exit 1; }

# `cargo test --all-targets` also runs the benchmarks (benches/ccdc-bench) in their short mode:
# they must still run; timings are printed, not checked.
step "cargo test"
log=$(mktemp)
set +e
cargo test --locked --all-targets -- --test-threads 2 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
passed=$(grep -Eo 'test result: [a-z]+\. [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed;' "$log" | awk '{s+=$1} END {print s+0}')
rm -f "$log"
echo
echo "tests: ${passed} passed, ${failed} failed"
exit "$status"
