#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60): `fuzz/run.sh 600` before resolving a
# change to a parser. Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
# A crash ends that target's run and leaves its input in fuzz/artifacts/<target>/ (the other
# targets still run; the script then exits 1); reproduce it with
# `cargo +nightly fuzz run <target> <that file>`, fix it, and add a regression test.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
# Debug assertions on: an integer overflow is a crash, as it is in the test build. Built once,
# then the binaries run directly, so editing the tree while the targets run changes nothing.
cargo +nightly fuzz build --debug-assertions
bin_dir="target/$(rustc +nightly -vV | sed -n 's/^host: //p')/release"
failed=()
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    echo "== $t (${seconds}s)"
    # New inputs go to a scratch corpus; the committed seeds in corpus/<t> stay small.
    scratch="$(mktemp -d)"
    log="$(mktemp)"
    status=0
    mkdir -p "artifacts/$t"
    "$bin_dir/$t" -artifact_prefix="artifacts/$t/" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
        "$scratch" "corpus/$t" >"$log" 2>&1 || status=$?
    grep -E "^(stat::number_of_executed_units|stat::new_units_added)|panicked|ERROR|SUMMARY" "$log" || true
    rm -rf "$scratch"
    if [ "$status" -ne 0 ]; then
        tail -40 "$log"
        echo "FAILED: $t (the input is in fuzz/artifacts/$t/)"
        failed+=("$t")
        continue
    fi
    rm -f "$log"
done
if [ ${#failed[@]} -ne 0 ]; then
    echo "crashed: ${failed[*]}"
    exit 1
fi
echo "all targets ran ${seconds}s each without a crash"
