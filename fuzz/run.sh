#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS each (default 600), one after the other.
#
#   bash fuzz/run.sh            # 10 minutes per target
#   bash fuzz/run.sh 20         # a smoke run (CI)
#   bash fuzz/run.sh 600 request_path   # one target
#
# Needs a nightly toolchain (`cargo +nightly`) and cargo-fuzz; without nightly it says so and
# exits 0, since the proptest properties in tests/ cover the same ground on stable. The
# working corpus grows in fuzz/corpus/ (git-ignored) from the small seed corpora in
# fuzz/seeds/; a crash is saved under fuzz/artifacts/ and fails the run.
#
# No sanitizer: the targets reach only safe Rust of ours, so ASan would slow every execution
# without finding anything; libFuzzer still catches panics, assertion failures and timeouts.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-600}"
targets=(token_request bearer_token request_path)
if (($# > 1)); then targets=("${@:2}"); fi

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz: no nightly toolchain here; skipped (the proptest properties run on stable)"
  exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "--- installing cargo-fuzz"
  cargo install --locked cargo-fuzz
fi

echo "--- building the fuzz targets"
cargo +nightly fuzz build --sanitizer none
mkdir -p logs
for target in "${targets[@]}"; do
  echo "--- fuzz ${target}: ${seconds}s"
  mkdir -p "corpus/${target}"
  log="logs/${target}.log"
  if ! cargo +nightly fuzz run --sanitizer none "${target}" "corpus/${target}" "seeds/${target}" -- \
    -max_total_time="${seconds}" -max_len=16384 -timeout=10 -print_final_stats=1 >"${log}" 2>&1; then
    tail -n 40 "${log}"
    echo "fuzz ${target}: FAILED (the input is under fuzz/artifacts/${target}/)"
    exit 1
  fi
  grep -E "^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)" "${log}"
  echo "corpus: $(ls "corpus/${target}" | wc -l) inputs"
done
echo "fuzz: every target ran ${seconds}s without a finding"
