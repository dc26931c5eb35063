"""Where a workload's compiled function spends its time: ``perf`` samples mapped onto its
object code, per instruction and per loop (what docs/cpu-runtime.md's profiles of W2 quote).

    perf record -e cpu-clock -F 4000 -D 8000 -o W2.perf -- \\
        python benchmarks/runtime_profile.py run --workload W2 --seconds 12 --out W2
    python benchmarks/runtime_profile.py report --out W2 --perf W2.perf [--listing]

``run`` prepares a workload of ``runtime.py`` on the user's path (as ``runtime_ab.py`` does),
writes the object code (``OUT.o``) and the function's address in this process (``OUT.addr``),
then calls it for ``--seconds`` seconds (``-D`` keeps the start-up out of the samples).
``report`` maps the samples that fall inside the module's functions (``nmc_run`` and the
functions it calls: one per population, the shared conv functions) onto ``objdump``'s
disassembly of the object, prints each function's share, then each loop (a backward jump and
the instructions it spans, innermost last) with its share of those samples; ``--listing``
prints the disassembly with each instruction's share.  Reading which loop is which is left to
the reader (the address order follows the emission order: the entry, then each population's
function, in graph order, with the shared functions after the first that calls them).
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FUNCTION = "nmc_run"


def run(args) -> None:
    sys.path.insert(0, str(HERE))
    import runtime as R

    from nmc.runner import load_artifact
    from nmc.targets import cpu

    g, inputs, T, _, _ = R.workload(args.workload, argparse.Namespace(data=args.data, quick=False))
    with tempfile.TemporaryDirectory() as tmp:
        execute = cpu.prepare(load_artifact(str(R.user_path(g, Path(tmp)))), threads=args.threads)
    execute(inputs, timesteps=T)
    Path(args.out + ".o").write_bytes(execute.compiled.obj)
    Path(args.out + ".addr").write_text(hex(execute.compiled.address))
    calls, start, cpu0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < args.seconds:
        execute(inputs, timesteps=T)
        calls += 1
    print(f"{calls} calls, CPU time per call {(time.process_time() - cpu0) / max(calls, 1) * 1e3:.2f} ms")


def report(args) -> None:
    address = int(Path(args.out + ".addr").read_text(), 16)
    symbols = subprocess.run(["objdump", "-t", args.out + ".o"], capture_output=True, text=True, check=True).stdout
    functions = {f[5]: (int(f[0], 16), int(f[4], 16)) for f in map(str.split, symbols.splitlines())
                 if len(f) == 6 and f[2] == "F" and f[3].endswith("text")}  # name: (offset in .ltext, size)
    base = address - functions[FUNCTION][0]  # where the code section is in this process
    end = max(offset + size for offset, size in functions.values())
    ips = subprocess.run(["perf", "script", "-i", args.perf, "-F", "ip"], capture_output=True, text=True,
                         check=True).stdout.split()
    hits = collections.Counter(int(ip, 16) - base for ip in ips if 0 <= int(ip, 16) - base < end)
    inside = sum(hits.values())
    print(f"{len(ips)} samples, {inside} in the module's functions ({inside / max(len(ips), 1):.1%}):")
    for name, (offset, size) in sorted(functions.items(), key=lambda kv: kv[1]):
        share = sum(n for o, n in hits.items() if offset <= o < offset + size) / max(inside, 1)
        print(f"  {name:24s} {share:6.1%}")
    listing = subprocess.run(["objdump", "-d", "--no-show-raw-insn", "-M", "intel", args.out + ".o"],
                             capture_output=True, text=True, check=True).stdout
    rows = []  # (offset, share %, text)
    for line in listing.splitlines():
        m = re.match(r"\s*([0-9a-f]+):\t(.*)", line)
        if m:
            off = int(m.group(1), 16)
            rows.append((off, 100 * hits.get(off, 0) / max(inside, 1), m.group(2)))
    if args.listing:
        for off, share, text in rows:
            print(f"{share:6.2f} {off:6x}  {text}" if share else f"       {off:6x}  {text}")
        return
    loops = []
    for off, _, text in rows:
        m = re.match(r"j\w+\s+([0-9a-f]+) <", text)
        if m and int(m.group(1), 16) < off:
            lo = int(m.group(1), 16)
            loops.append((lo, off, sum(share for o, share, _ in rows if lo <= o <= off)))
    print("  from     to  share %  instructions")
    for lo, hi, share in sorted(loops):
        if share >= args.min_share:
            print(f"{lo:6x} {hi:6x}  {share:7.2f}  {sum(1 for o, _, _ in rows if lo <= o <= hi)}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="prepare a workload and call it in a loop (under perf record)")
    r.add_argument("--workload", default="W2")
    r.add_argument("--seconds", type=float, default=12)
    r.add_argument("--threads", type=int, default=1)
    shared = HERE.parents[1] / "shared" / "data"
    r.add_argument("--data", default=str(shared) if shared.is_dir() else None,
                   help="folder with mnist/mnist_test.npz (as runtime.py's --data)")
    r.add_argument("--out", required=True, help="prefix of the object code and address files")
    p = sub.add_parser("report", help="map perf samples onto the object code")
    p.add_argument("--out", required=True)
    p.add_argument("--perf", default="perf.data")
    p.add_argument("--listing", action="store_true", help="every instruction with its share")
    p.add_argument("--min-share", type=float, default=0.5, help="loops below this share (%%) are not printed")
    args = ap.parse_args(argv)
    run(args) if args.command == "run" else report(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
