#!/usr/bin/env python3
"""Function costs from a callgrind output file (`benches/instructions.rs` workloads), for
comparing two builds function by function: whole-run totals of a workload that allocates
much move by up to 2% with the heap's layout alone, so judge a change on the inclusive cost
of the functions it touches.

    python3 cg.py calls   FILE [PATTERN]   every function whose name contains PATTERN: how
                                           often it was called, its inclusive cost, per call
    python3 cg.py callees FILE PATTERN     what the functions matching PATTERN spend their
                                           cost on: their own instructions, then each callee
    python3 cg.py callers FILE PATTERN     who calls the functions matching PATTERN, how often,
                                           at what inclusive cost
    python3 cg.py locked  FILE [UNITS]     how often the run executed a locked
                                           read-modify-write or fence (`lock` prefix,
                                           `xchg` with memory, `mfence`), by object and
                                           function, divided by UNITS (callers, requests);
                                           FILE recorded with `--dump-instr=yes`. Each costs
                                           2 to 7 ns here, which no instruction count shows.

PATTERN is a substring of the demangled name (`Scheduler>::carry_out`, `Engine>::complete`,
`__rust_alloc`). Costs are the first event of the file (`Ir` by default), or the event named
by `CG_EVENT` (`CG_EVENT=Bcm` for the conditional branches mispredicted in a file recorded
with `--branch-sim=yes`; a cost line that leaves it out counts 0), from calls between
different functions: a function's call to itself is left out, but a cycle through others
(A calls B calls A) counts in `calls` once per call it makes.
"""
import collections
import os
import re
import signal
import sys


def parse(path):
    """(own cost per function, {(caller, callee): [calls, inclusive cost]})."""
    names, own, edges = {}, collections.Counter(), {}

    def name(token):
        m = re.match(r"\((\d+)\)(?: (.*))?", token)
        if not m:
            return token
        if m.group(2):
            names[m.group(1)] = m.group(2)
        return names.get(m.group(1), m.group(1))

    fn = callee = None
    calls = None
    # Cost lines start with one number per position (`positions: instr line` gives two).
    positions = 1
    # Which column of the costs: the first event, or the one CG_EVENT names.
    event = 0
    for line in open(path, errors="replace"):
        line = line.rstrip("\n")
        if line.startswith("positions:"):
            positions = len(line.split()[1:])
        elif line.startswith("events:") and os.environ.get("CG_EVENT"):
            recorded = line.split()[1:]
            if os.environ["CG_EVENT"] not in recorded:
                sys.exit(f"{path} records {' '.join(recorded)}, not {os.environ['CG_EVENT']}")
            event = recorded.index(os.environ["CG_EVENT"])
        elif line.startswith("fn="):
            fn, callee = name(line[3:]), None
        elif line.startswith("cfn="):
            callee = name(line[4:])
        elif line.startswith("calls="):
            calls = int(line[6:].split()[0])
        elif line and line[0] in "0123456789+-*":
            parts = line.split()
            at = positions + event
            cost = int(parts[at]) if len(parts) > at else 0
            if calls is not None:
                if fn is not None and callee != fn:
                    edge = edges.setdefault((fn, callee), [0, 0])
                    edge[0] += calls
                    edge[1] += cost
                calls = None
            elif fn is not None:
                own[fn] += cost
    return own, edges


def executions(path):
    """{(object, address): (function, times run)} from a file recorded with
    `--dump-instr=yes` (cost lines start with an instruction address, absolute or relative
    to the last one; the times run are the `Ir` column)."""
    objects, functions, runs = {}, {}, {}
    ob = fn = None
    last, after_call, column = 0, False, None
    for line in open(path, errors="replace"):
        line = line.rstrip("\n")
        m = re.match(r"(c?ob|c?fn)=\((\d+)\)(?: (.*))?", line)
        if m:
            table = objects if m.group(1).endswith("ob") else functions
            if m.group(3):
                table[m.group(2)] = m.group(3)
            if m.group(1) == "ob":
                ob = objects[m.group(2)]
            elif m.group(1) == "fn":
                fn = functions[m.group(2)]
        elif line.startswith("positions:"):
            positions = line.split()[1:]
            if "instr" not in positions:
                sys.exit(f"{path} has no instruction addresses: record it with --dump-instr=yes")
        elif line.startswith("events:"):
            events = line.split()[1:]
            if "Ir" not in events:
                sys.exit(f"{path} does not count instructions (Ir)")
            column = len(positions) + events.index("Ir")
        elif line.startswith("calls="):
            after_call = True
        elif line and line[0] in "0123456789+-*":
            parts = line.split()
            a = parts[0]
            last = (int(a, 16) if a.startswith("0x") else last + int(a) if a[0] in "+-"
                    else last if a == "*" else int(a))
            # A call's line holds the callee's inclusive cost, not this instruction's runs.
            if after_call:
                after_call = False
            elif len(parts) > column:
                name, n = runs.get((ob, last), (fn, 0))
                runs[(ob, last)] = (name, n + int(parts[column]))
    return runs


def locked(path, units):
    """Runs of locked instructions in every object of the run that is still on disk. An
    object rebuilt since the run (cargo reuses the binary's name) is refused: its addresses
    would not be the ones that ran."""
    import subprocess
    runs = executions(path)
    by_fn, total = collections.Counter(), 0
    for ob in sorted({ob for ob, _ in runs if ob and os.path.exists(ob)}):
        dump = subprocess.run(["objdump", "-d", "--no-show-raw-insn", ob],
                              capture_output=True, text=True).stdout
        starts, lock = set(), set()
        for l in dump.splitlines():
            m = re.match(r"\s*([0-9a-f]+):\s+(\S+)(.*)", l)
            if not m:
                continue
            at = int(m.group(1), 16)
            starts.add(at)
            if m.group(2) in ("lock", "mfence") or (m.group(2) == "xchg" and "(" in m.group(3)):
                lock.add(at)
        ran = [a for o, a in runs if o == ob]
        if not starts:
            continue
        astray = sum(a not in starts for a in ran)
        if astray > len(ran) // 100:
            sys.exit(f"{ob}: {astray} of {len(ran)} addresses that ran are not instructions "
                     "in it now: rebuilt since the run?")
        short = ob.rsplit("/", 1)[1]
        for a in lock:
            name, n = runs.get((ob, a), (None, 0))
            if n:
                by_fn[f"{short}: {name}"] += n
                total += n
    print(f"{'per unit':>10}  object: function")
    for name, n in by_fn.most_common(40):
        print(f"{n / units:10.2f}  {name[:150]}")
    print(f"{total / units:10.2f}  in all")


def row(calls, cost, name):
    per = cost / calls if calls else cost
    # Fractions for events rarer than calls (mispredicted branches, cache misses).
    per = f"{per:9.2f}" if per < 10 else f"{int(per):9,d}"
    print(f"{calls:10d} {cost:14,d} {per}  {name[:150]}")


def main():
    # Piped into `head`: stop quietly.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    if len(sys.argv) < 3 or sys.argv[1] not in ("calls", "callees", "callers", "locked"):
        sys.exit(__doc__)
    what, path = sys.argv[1], sys.argv[2]
    if what == "locked":
        locked(path, float(sys.argv[3]) if len(sys.argv) > 3 else 1)
        return
    pattern = sys.argv[3] if len(sys.argv) > 3 else ""
    own, edges = parse(path)
    print(f"{'calls':>10} {'inclusive':>14} {'per call':>9}  function")
    if what == "calls":
        calls, cost = collections.Counter(), collections.Counter()
        for (_, callee), (n, c) in edges.items():
            if pattern in callee:
                calls[callee] += n
                cost[callee] += c
        for f, c in cost.most_common(40):
            row(calls[f], c, f)
        return
    for f in sorted(f for f in own if pattern in f):
        print(f"{'':10} {own[f]:14,d} {'':9}  own cost of {f[:130]}")
    found = [
        (c, n, callee if what == "callees" else caller)
        for (caller, callee), (n, c) in edges.items()
        if pattern in (caller if what == "callees" else callee)
    ]
    for c, n, f in sorted(found, reverse=True)[:40]:
        row(n, c, f)


if __name__ == "__main__":
    main()
