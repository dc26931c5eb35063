"""PACMAN's router-table compressors on tables read from JSON (run by benchmarks/routing.py).

Runs in its own venv, so that nmc's stays free of PACMAN's pins::

    python3.11 -m venv ../venv-pacman
    ../venv-pacman/bin/pip install 'spinnaker-pacman==1!7.4.1'
    ../venv-pacman/bin/python benchmarks/pacman_routing.py tables.json results.json [repeats] [wall|cpu]

Input: ``{"tables": [{"x": .., "y": .., "entries": [[key, mask, route, defaultable], ...]}]}``
(route: SpiNNaker's route word, bits 0-5 links, 6+p processor p).  Every table is compressed
"as far as possible" (PACMAN's ``router_table_compress_as_far_as_possible``) by each of
PACMAN's compressors, each timed alone (``time.perf_counter`` around its ``compress_table``,
the compressor's per-table call: PACMAN's own front end times a compressor as a whole
algorithm over all tables, with its progress bar and the output tables' construction, which
this leaves out; the median of ``repeats`` runs, default 1; ``cpu``: ``time.thread_time``, the
calling thread's CPU time, instead of ``perf_counter``'s wall time):

* ``ordered_covering`` — rig's Ordered Covering then default-route removal, as PACMAN ships it;
* ``pair`` — the ordered pair compressor (``pair_compressor(ordered=True)``'s class);
* ``pair+dr`` — ``pair`` then PACMAN's ``remove_default_routes`` on its output (a composition
  of PACMAN's own functions, not a compressor it ships; timed as the sum of both);
* ``range`` — the range compressor (it keeps the table unchanged when ranges overlap).

Each output is checked with PACMAN's own ``routing_compression_checker.compare_tables``
(not timed).  Output: ``{"results": [{compressor: {"entries", "seconds", "ok"}}]}`` in table
order, and ``"pacman"``: the package version.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from importlib.metadata import version


def main(src: str, dst: str, repeats: str = "1", clock: str = "wall") -> None:
    from spinn_machine import MulticastRoutingEntry, RoutingEntry
    from spinn_machine.virtual_machine import virtual_machine
    from spinn_utilities.config_holder import set_config

    from pacman.config_setup import unittest_setup
    from pacman.data.pacman_data_writer import PacmanDataWriter
    from pacman.model.routing_tables import CompressedMulticastRoutingTable, UnCompressedMulticastRoutingTable
    from pacman.operations.router_compressors.ordered_covering_router_compressor import remove_default_routes
    from pacman.operations.router_compressors.ordered_covering_router_compressor.ordered_covering import (
        _OrderedCoveringCompressor,
    )
    from pacman.operations.router_compressors.pair_compressor import _PairCompressor
    from pacman.operations.router_compressors.ranged_compressor import RangeCompressor
    from pacman.operations.router_compressors.routing_compression_checker import compare_tables

    unittest_setup()
    set_config("Machine", "version", "5")  # SpiNN-5: the 48-chip board
    set_config("Mapping", "router_table_compress_as_far_as_possible", "True")
    writer = PacmanDataWriter.mock()
    writer.set_machine(virtual_machine(8, 8))  # one SpiNN-5 board: its 48 chips

    def as_table(x, y, rows, cls=UnCompressedMulticastRoutingTable):
        table = cls(x, y)
        for key, mask, route, defaultable in rows:
            entry = RoutingEntry(spinnaker_route=route, defaultable=bool(defaultable))
            table.add_multicast_routing_entry(MulticastRoutingEntry(key, mask, entry))
        return table

    def entries_of(out):
        return list(out.multicast_routing_entries) if hasattr(out, "multicast_routing_entries") else list(out)

    def pair_dr(table):
        return remove_default_routes(_PairCompressor(ordered=True).compress_table(table), None)

    compressors = {
        "ordered_covering": lambda t: _OrderedCoveringCompressor().compress_table(t),
        "pair": lambda t: _PairCompressor(ordered=True).compress_table(t),
        "pair+dr": pair_dr,
        "range": lambda t: RangeCompressor().compress_table(t),
    }
    timer = {"wall": time.perf_counter, "cpu": time.thread_time}[clock]
    with open(src) as f:
        tables = json.load(f)["tables"]
    results = []
    for t in tables:
        row = {}
        for name, compress in compressors.items():
            times = []
            for _ in range(int(repeats)):
                table = as_table(t["x"], t["y"], t["entries"])  # afresh: a compressor may reorder it
                start = timer()
                out = entries_of(compress(table))
                times.append(timer() - start)
            seconds = statistics.median(times)
            compressed = CompressedMulticastRoutingTable(t["x"], t["y"])
            for e in out:
                compressed.add_multicast_routing_entry(e)
            try:
                compare_tables(table, compressed)
                ok = True
            except Exception:  # PACMAN's checker raises PacmanRoutingException
                ok = False
            row[name] = {"entries": len(out), "seconds": seconds, "ok": ok}
        results.append(row)
    with open(dst, "w") as f:
        json.dump({"pacman": version("spinnaker-pacman"), "results": results}, f)


if __name__ == "__main__":
    main(*sys.argv[1:5])
