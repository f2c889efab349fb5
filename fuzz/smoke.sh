#!/usr/bin/env bash
# A short, bounded smoke run of every fuzz target of `syncmgr` (or of the targets named).
#
#   fuzz/smoke.sh                     # every target, 20 s each
#   FUZZ_SECONDS=300 fuzz/smoke.sh    # every target, 5 min each
#   fuzz/smoke.sh engine legacy       # only these targets
#
# Needs a nightly toolchain and cargo-fuzz:
#
#   rustup toolchain install nightly
#   cargo install cargo-fuzz
#
# It builds every target first (one `cargo +nightly fuzz build`: debug assertions, overflow
# checks and AddressSanitizer on, as `cargo fuzz run` builds them), then runs each one under
# `nice -n 19` for FUZZ_SECONDS, growing fuzz/corpus/<target> (git-ignored; seeded from
# fuzz/seeds/<target> if that exists). A crash (a panic, a failed check, an input running
# longer than FUZZ_TIMEOUT seconds, or more memory than FUZZ_RSS_MB) stops the run: the input
# is in fuzz/artifacts/<target>/ and the script exits 1. Missing tools exit 2.
#
# Environment: FUZZ_SECONDS (default 20), FUZZ_TIMEOUT (seconds per input, default 30),
# FUZZ_RSS_MB (default 2048). The targets run one after another, one process each.
# FUZZ_COVERAGE=1 also replays each target's corpus once with libFuzzer's -print_coverage and
# prints, per file of src/, the instrumented edges the corpus reaches (functions the compiler
# inlined count in their caller's file).
#
# To replay or minimize a crash:
#
#   cargo +nightly fuzz run <target> fuzz/artifacts/<target>/crash-...
#   cargo +nightly fuzz tmin <target> fuzz/artifacts/<target>/crash-...
set -u -o pipefail

cd "$(dirname "$0")/.." || exit 2

TARGETS_ALL=(ids flags engine legacy)
SECONDS_EACH="${FUZZ_SECONDS:-20}"
TIMEOUT="${FUZZ_TIMEOUT:-30}"
RSS_MB="${FUZZ_RSS_MB:-2048}"

if [ "$#" -gt 0 ]; then
    TARGETS=("$@")
else
    TARGETS=("${TARGETS_ALL[@]}")
fi

missing=0
if ! command -v cargo >/dev/null 2>&1; then
    echo "smoke.sh: cargo not found. Install Rust with rustup: https://rustup.rs" >&2
    missing=1
elif ! cargo +nightly --version >/dev/null 2>&1; then
    echo "smoke.sh: no nightly toolchain (cargo-fuzz needs one). Install it with:" >&2
    echo "    rustup toolchain install nightly" >&2
    missing=1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "smoke.sh: cargo-fuzz not found. Install it with:" >&2
    echo "    cargo install cargo-fuzz" >&2
    missing=1
fi
[ "$missing" -eq 0 ] || exit 2

for t in "${TARGETS[@]}"; do
    if [ ! -f "fuzz/fuzz_targets/$t.rs" ]; then
        echo "smoke.sh: no fuzz target '$t' (have: ${TARGETS_ALL[*]})" >&2
        exit 2
    fi
done

echo "== building the fuzz targets"
if ! nice -n 19 cargo +nightly fuzz build; then
    echo "smoke.sh: the fuzz targets do not build" >&2
    exit 1
fi

status=0
summary=()
for t in "${TARGETS[@]}"; do
    corpus="fuzz/corpus/$t"
    mkdir -p "$corpus" "fuzz/artifacts/$t"
    dirs=("$corpus")
    [ -d "fuzz/seeds/$t" ] && dirs+=("fuzz/seeds/$t")
    log="fuzz/artifacts/$t/smoke.log"
    echo "== $t: ${SECONDS_EACH}s"
    nice -n 19 cargo +nightly fuzz run "$t" "${dirs[@]}" -- \
        -max_total_time="$SECONDS_EACH" -timeout="$TIMEOUT" -rss_limit_mb="$RSS_MB" \
        -print_final_stats=1 >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -n 1)
    files=$(find "$corpus" -type f | wc -l)
    if [ "$rc" -eq 0 ]; then
        result="ok"
    else
        result="FAILED (exit $rc)"
        status=1
        echo "---- $t failed; the end of its log ($log):" >&2
        tail -n 40 "$log" >&2
        for a in "fuzz/artifacts/$t"/*; do
            case "$a" in
            */smoke.log) ;;
            *) echo "    replay: cargo +nightly fuzz run $t $a" >&2 ;;
            esac
        done
    fi
    if [ "${FUZZ_COVERAGE:-0}" = 1 ] && [ "$rc" -eq 0 ]; then
        echo "-- $t: edges of src/ reached by its corpus ($files inputs)"
        nice -n 19 "fuzz/target/x86_64-unknown-linux-gnu/release/$t" "$corpus" -runs=0 \
            -print_coverage=1 2>&1 | awk -v src="$PWD/src/" '
            /^(UN)?COVERED_FUNC:/ {
                loc = $NF; sub(/:[0-9]+$/, "", loc)
                if (index(loc, src) != 1) next
                file = substr(loc, length(src) + 1)
                split($5, e, "/"); hit[file] += e[1]; all[file] += e[2]
                if ($1 == "COVERED_FUNC:") fn_hit[file]++; fn_all[file]++
            }
            END {
                for (f in all) {
                    printf "   %-22s edges %5d/%-5d (%3d%%)  functions %3d/%-3d\n", f, hit[f], all[f],
                        all[f] ? 100 * hit[f] / all[f] : 0, fn_hit[f], fn_all[f]
                    th += hit[f]; ta += all[f]
                }
                if (ta) printf "   %-22s edges %5d/%-5d (%3d%%)\n", "all of src/", th, ta, 100 * th / ta
            }' | sort
    fi
    summary+=("$(printf '%-7s %-18s execs %-10s %-22s corpus %s' "$t" "$result" "${execs:-?}" "${cov:-cov: ?}" "$files")")
done

echo "== summary (${SECONDS_EACH}s per target)"
printf '%s\n' "${summary[@]}"
exit "$status"
