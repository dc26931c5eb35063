"""Mapping algorithms any chip class can use (no class names here): the flat netlist of a
graph, partitioning under per-core limits, annealed placement over a cost, ``hw`` op helpers."""
