"""A bounded fuzz run (issue 22): for each input kind, mutated seeds through ``nmc`` in-process:
no internal error, no hang, nothing left behind after a failure, no input changed, and no
mutation of a listed bad-input class accepted.  The long campaign: benchmarks/fuzz.py."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from tests.fuzz.harness import run_case
from tests.fuzz.strategies import KINDS, cases

CASES_PER_KIND = 30


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_fuzz_kind(kind):
    @settings(max_examples=CASES_PER_KIND, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(cases(kind))
    def check(case):
        r = run_case(case, timeout=60)
        assert r.outcome in ("exit0", "exit1", "exit2"), (case.argv, case.label, r.outcome, r.stderr)
        assert not r.faults, (case.argv, case.label, r.faults, r.stderr)

    check()
