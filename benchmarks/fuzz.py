"""Bad-input campaign (issue 22): N mutated cases per input kind through ``nmc`` in-process.

    python benchmarks/fuzz.py --cases 10000 [--kinds nmd,onnx,...] [--seed S] [--timeout 60] [--show 5]

Prints the table of docs/bad-input.md: per kind, how many cases exited 0/1/2/70, timed out,
left a file behind after a failure, were accepted although a listed bad-input class
(``silent``), or changed an input (``clobbered``); then up to --show examples of each fault.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.fuzz.harness import run_case, table  # noqa: E402
from tests.fuzz.strategies import KINDS, make_case, seeds  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=int, default=100, help="cases per kind (default 100)")
    p.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated, of {', '.join(KINDS)}")
    p.add_argument("--seed", type=int, default=0, help="first case seed (cases use seed..seed+N-1)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per case (default 60)")
    p.add_argument("--show", type=int, default=3, help="examples to print per fault")
    args = p.parse_args()
    warnings.simplefilter("ignore")
    os.environ.setdefault("NMC_NO_CACHE", "1")
    seeds()
    results, bad = {}, []
    t0 = time.time()
    for kind in args.kinds.split(","):
        rs = []
        for i in range(args.seed, args.seed + args.cases):
            r = run_case(make_case(kind, i), args.timeout)
            rs.append(r)
            if r.outcome in ("exit70", "timeout", "other") or r.faults:
                bad.append((kind, i, r))
        results[kind] = rs
        print(f"{kind}: {len(rs)} cases in {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    print(table(results))
    shown: dict[str, int] = {}
    for kind, i, r in bad:
        key = r.outcome if r.outcome in ("exit70", "timeout", "other") else ",".join(r.faults)
        if shown.get(key, 0) < args.show:
            shown[key] = shown.get(key, 0) + 1
            print(f"\n{key}: kind {kind} seed {i} ({r.case.label}): nmc {' '.join(r.case.argv)}\n  "
                  + "\n  ".join(r.stderr.strip().splitlines()[:3]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
