#!/usr/bin/env python3
"""Interleaved A/B rounds of criterion bench binaries: the median, per variant, of each
bench's ratio of `syncmgr` (or `syncmgr_async`, or the merge bench's `engine` and
`engine_join`) to the baselines of the same run: the benches whose names differ from it in
that one part (`join/1_keys/10_callers/singleflight_async`,
`merge/pending_size/k1/floor/1k_pending`), or that end where it has a case after it
(`merge/dedup/1k_distinct/floor_ItemId_passthrough` for `.../1k_distinct/engine/k64`).

    python3 ab.py ROUNDS FILTER BIN_A BIN_B ...

Each BIN is a bench binary built from one commit (`cargo bench --bench manager --no-run`,
then copy `target/release/deps/manager-*` to a name of its own: the label is the first six
characters of its file name), or a wrapper script that sets an environment variable and runs
one. FILTER is criterion's (`manager/noop/stream_`, `join/`, `merge/pending_size/k1/`).
Quick mode (`SYNCMGR_BENCH_QUICK=1`) unless `AB_FULL=1`. Rounds alternate the order of the variants.
Prints one line per bench and baseline: the median ratio per variant, then every round's.
"""
import os
import re
import statistics
import subprocess
import sys

UNIT = {"ns": 1e-3, "µs": 1, "us": 1, "ms": 1e3, "s": 1e6}


def times(binary, filt, env):
    """criterion's middle estimate of every bench in one run of `binary`, in µs."""
    out = subprocess.run([binary, "--bench", filt], capture_output=True, text=True,
                         env=env).stdout
    name, found = None, {}
    for line in out.splitlines():
        if line and not line.startswith(" ") and "/" in line and "time:" not in line \
                and "sessions" not in line and "latency" not in line:
            name = line.split()[0]
        m = re.search(r"time:\s+\[\S+ \S+ (\S+) (\S+) \S+ \S+\]", line)
        if m and name:
            found[name] = float(m.group(1)) * UNIT[m.group(2)]
            name = None
    return found


SIDES = ("syncmgr", "syncmgr_async")


def is_side(part):
    """A part that names syncmgr's side of a group: the manager's and the joins' `syncmgr`
    and `syncmgr_async`, the merge bench's `engine` and `engine_join`."""
    return part in SIDES or part.startswith("engine")


def baselines(name, found):
    """(bench, its differing part) for each baseline of `name`, if `name` is a syncmgr side:
    the benches named as it is but for the part that names the side
    (`merge/pending_size/k1/floor/1k_pending` for `.../k1/engine/1k_pending`), or, when the
    side has a case after it, the group's benches that stop there (`merge/dedup/1k_distinct/
    floor_ItemId_passthrough` for `.../1k_distinct/engine/k64`)."""
    parts = name.split("/")
    sides = [i for i, p in enumerate(parts) if is_side(p)]
    if not sides:
        return []
    i = sides[-1]
    found_pairs = []
    for k in found:
        other = k.split("/")
        if len(other) <= i or other[:i] != parts[:i] or is_side(other[i]):
            continue
        if other[i + 1:] == parts[i + 1:] or len(other) == i + 1:
            found_pairs.append((k, other[i]))
    return found_pairs


def main():
    rounds, filt, bins = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    env = dict(os.environ)
    if not env.get("AB_FULL"):
        env["SYNCMGR_BENCH_QUICK"] = "1"
    ratios = {}
    for r in range(rounds):
        for b in bins if r % 2 == 0 else bins[::-1]:
            found = times(b, filt, env)
            for n, t in found.items():
                for k, baseline in baselines(n, found):
                    ratios.setdefault((n, baseline, b), []).append(t / found[k])
        print("round", r, file=sys.stderr)
    for n, baseline in sorted({k[:2] for k in ratios}):
        row = []
        for b in bins:
            v = ratios.get((n, baseline, b))
            if v:
                row.append("%s %.2f [%s]" % (os.path.basename(b)[:6], statistics.median(v),
                                             " ".join("%.2f" % x for x in v)))
        print(n, "÷", baseline, " | ".join(row))


if __name__ == "__main__":
    main()
