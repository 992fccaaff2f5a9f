#!/usr/bin/env bash
# Fuzz the frame parser/decoder and the range decoder for $SECONDS_PER_TARGET
# seconds each (default 60). Not part of CI.
#
# 1. With `cargo fuzz` (nightly + cargo-fuzz installed): coverage-guided libFuzzer.
# 2. Else with a nightly toolchain: builds the same libFuzzer targets with the
#    sanitizer-coverage flags cargo-fuzz would pass, and runs them directly.
# 3. Else (stable only): the randomized stand-in fuzz/src/stable_fuzz.rs
#    (random + mutated valid inputs, same entry points, no coverage guidance).
#
# Usage: bench/fuzz.sh [seconds]      MODE=stable bench/fuzz.sh  forces (3)
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECS="${1:-${SECONDS_PER_TARGET:-60}}"
TARGETS=(frame_decode range_decode)
MODE="${MODE:-auto}"
mkdir -p corpus artifacts

have_nightly() { rustup toolchain list 2>/dev/null | grep -q '^nightly'; }

if [[ "$MODE" == auto ]]; then
  if have_nightly && cargo +nightly fuzz --help >/dev/null 2>&1; then MODE=cargo-fuzz
  elif have_nightly; then MODE=libfuzzer
  else MODE=stable; fi
fi
echo "fuzz mode: $MODE, ${SECS}s per target"

case "$MODE" in
  cargo-fuzz)
    cargo build --release --no-default-features --bin stable_fuzz
    for t in "${TARGETS[@]}"; do
      mkdir -p "corpus/$t"
      target/release/stable_fuzz seeds "$t" "corpus/$t"
      cargo +nightly fuzz run "$t" "corpus/$t" -- -max_total_time="$SECS" -rss_limit_mb=4096
    done ;;
  libfuzzer)
    cargo build --release --no-default-features --bin stable_fuzz
    for t in "${TARGETS[@]}"; do mkdir -p "corpus/$t"; target/release/stable_fuzz seeds "$t" "corpus/$t"; done
    HOST="$(rustc -vV | sed -n 's/host: //p')"
    # The flags cargo-fuzz passes; --target keeps them off build scripts.
    RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks" \
      cargo +nightly build --release --bin frame_decode --bin range_decode --target-dir target/libfuzzer --target "$HOST"
    for t in "${TARGETS[@]}"; do
      "target/libfuzzer/$HOST/release/$t" "corpus/$t" -max_total_time="$SECS" -rss_limit_mb=4096 \
        -artifact_prefix="artifacts/$t-"
    done ;;
  stable)
    cargo build --release --no-default-features --bin stable_fuzz
    for t in "${TARGETS[@]}"; do
      target/release/stable_fuzz "$t" "$SECS"
    done ;;
  *) echo "unknown MODE=$MODE (auto|cargo-fuzz|libfuzzer|stable)"; exit 2 ;;
esac
