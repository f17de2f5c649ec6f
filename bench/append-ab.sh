#!/usr/bin/env bash
# The audit tree's cost on append, counted rather than timed: builds the store's `append`
# bench at a baseline commit (default d251bcd, the store before the Merkle tree) and at HEAD,
# runs one short pass of each under callgrind (instruction counts do not depend on what else
# the machine is doing), and prints the instructions of the whole process and of the SQLite
# writer thread, with and without SHA-256 (valgrind has no SHA-NI, so its software SHA-256 is
# reported apart; on the real CPU those hashes cost ~10× less).
#
# Usage: bench/append-ab.sh [baseline-commit]     (needs valgrind; ~15 min on 2 cores)
set -euo pipefail
base=${1:-d251bcd}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
build() { # <source dir> <output binary>
  (cd "$1" && cargo bench -p countersign-store --bench append --no-run --message-format=json) |
    python3 -c 'import json,sys
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m["target"]["name"]=="append" and m.get("executable"): print(m["executable"])' |
    tail -1 | xargs -I{} cp {} "$2"
}
git -C "$root" worktree add -q --detach "$work/base" "$base"
trap 'git -C "$root" worktree remove --force "$work/base"; rm -rf "$work"' EXIT
build "$work/base" "$work/append-base"
build "$root" "$work/append-head"
for b in base head; do
  (cd "$work" && TMPDIR=/dev/shm valgrind --tool=callgrind --separate-threads=yes \
    --callgrind-out-file="cg-$b.%p" "./append-$b" --bench --profile-time 1 \
    --exact sqlite_submit_64_tasks/auto_allowed > "out-$b.txt" 2>&1)
done
python3 - "$work" <<'PY'
import collections, glob, re, subprocess, sys
work = sys.argv[1]
def profile(f):
    out = subprocess.run(['callgrind_annotate', '--inclusive=no', '--threshold=100', '--auto=no', f],
                         capture_output=True, text=True).stdout
    total = sha = 0
    for line in out.split('file:function', 1)[-1].splitlines():
        m = re.match(r'^\s*([\d,]+) \([^)]*\)\s+(.*)$', line)
        if m:
            n = int(m.group(1).replace(',', ''))
            total += n
            sha += n if 'sha2::' in m.group(2) else 0
    return total, sha
for b in ('base', 'head'):
    entries = int(re.search(r'after the bench: (\d+)', open(f'{work}/out-{b}.txt').read()).group(1))
    threads = [profile(f) for f in sorted(glob.glob(f'{work}/cg-{b}.*-*'))]
    writer = max(threads, key=lambda t: t[1])  # the thread that seals and hashes entries
    total = sum(t[0] for t in threads); sha = sum(t[1] for t in threads)
    print(f'{b}: {entries} entries; process {total/entries:,.0f} instr/entry '
          f'({(total-sha)/entries:,.0f} without SHA-256); writer {writer[0]/entries:,.0f} '
          f'({(writer[0]-writer[1])/entries:,.0f} without SHA-256)')
PY
