"""The ``--cluster`` option of ``nmc run`` and ``nmc eval`` (docs/cluster.md); Ray itself is
imported only when the option is given (:mod:`nmc.cluster`)."""

from __future__ import annotations


def add_cluster_option(p) -> None:
    p.add_argument("--cluster", metavar="auto|ADDRESS",
                   help="shard the samples over a Ray cluster (pip install 'nmc[cluster]'); outputs and report as "
                        "without it but for timings.  'auto': the running cluster that ray.init(address='auto') "
                        "finds (RAY_ADDRESS, else the latest 'ray start' on this machine, else any running here), "
                        "else a local cluster of this machine's CPUs started and stopped for this run.  "
                        "ADDRESS: HOST:PORT of a head node, or ray://HOST:PORT")
