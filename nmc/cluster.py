"""Samples sharded over a Ray cluster: ``nmc run --cluster`` and ``nmc eval --cluster``
(docs/design.md §7, docs/cluster.md).

The samples are cut into contiguous shards, each a ``[start, stop)`` range of sample indices
(:func:`shard_ranges`), and each shard is one Ray task.  A task's result is filed under its
shard's index and the results are put back in index order (:func:`assemble`, which checks that
the shards tile the samples and that each arrived exactly once), so the outcome never depends on
which worker ran what or in which order the shards finished.  A worker process loads a job (the
image or graph prepared for the backend, and the inputs) on its first shard of that job and
keeps it for the job's later shards.  A task whose worker process dies is run again by Ray
(``max_retries``); a task's own exception (an ``NmcError`` on bad input, say) is not retried
but raised here as the single-process run raises it.

Results merge exactly: outputs, voltages and spike records are concatenated in sample order,
counts are added, and a backend whose figures depend on the batch (the emulator's energy per
inference, link loads) derives them again from the added counts (:class:`nmc.runner.Tally`).
So files written are byte-for-byte those of the single-process run and the JSON reports are
equal but for :data:`HOST_FIELDS`.

Ray is an optional dependency (``pip install 'nmc[cluster]'``), imported only by
:meth:`Cluster.__enter__`: importing this module does not import it.
"""

from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nmc.diagnostics import NmcError, UsageError
from nmc.runner import RunResult, Tally

INSTALL_HINT = "pip install 'nmc[cluster]'"
SHARDS_PER_CPU = 4  # shards per CPU of the cluster: slow workers even out, a lost worker costs a small shard
MAX_RETRIES = 3  # Ray reruns a shard whose worker process died this many times
KEEP = 4  # jobs a worker process keeps loaded (nmc eval runs one job per network)
# Report fields that depend on when and where a run happened rather than on its inputs: the
# only ones in which a cluster run's report may differ from the single-process run's.
HOST_FIELDS = frozenset({"compile_s", "run_s", "threads", "from_cache"})
# What ray.init(address="auto") says when no cluster is running: then --cluster auto starts a
# local one; any other failure to connect is an error.
NOT_FOUND = "Could not find any running Ray instance"
AUTH_HINT = ("a cluster started with 'ray start' checks a token by default: set RAY_AUTH_MODE=token "
             "(the token is read from ~/.ray/auth_token, or RAY_AUTH_TOKEN)")


# ------------------------------------------------------------------ shards and reassembly


def shard_ranges(n: int, shards: int, align: int = 1) -> list[tuple[int, int]]:
    """``n`` samples cut into at most ``shards`` contiguous ``[start, stop)`` ranges of nearly
    equal size, in order, every boundary but the last (``n``) a multiple of ``align``.  No
    samples: one empty range, so a run still happens (and fails or not as it would here)."""
    if n == 0:
        return [(0, 0)]
    blocks = -(-n // align)
    k = max(1, min(shards, blocks))
    edges = [min(n, blocks * i // k * align) for i in range(k + 1)]
    return list(zip(edges[:-1], edges[1:]))


def assemble(ranges: Sequence[tuple[int, int]], received: Sequence[tuple[int, Any]], n: int) -> list:
    """The parts of ``received`` (``(shard index, part)`` pairs, in any order) in shard order,
    after checking that ``ranges`` tile ``[0, n)`` and that every shard's part arrived exactly
    once: nothing lost, nothing counted twice."""
    starts = [a for a, _ in ranges]
    stops = [b for _, b in ranges]
    if not ranges or starts[0] != 0 or stops[-1] != n or starts[1:] != stops[:-1] or any(a > b for a, b in ranges):
        raise RuntimeError(f"shards {list(ranges)} do not tile the {n} samples")
    seen = sorted(i for i, _ in received)
    if seen != list(range(len(ranges))):
        raise RuntimeError(f"shard results arrived for shards {seen}, expected each of 0..{len(ranges) - 1} once")
    parts = dict(received)
    return [parts[i] for i in range(len(ranges))]


def merge_results(parts: Sequence[RunResult]) -> RunResult:
    """The result of the whole batch from the results of its shards, in sample order: what one
    run on the whole batch gives (``compile_s`` and ``run_s`` are left for the caller)."""
    first = parts[0]
    for p in parts[1:]:
        if (p.backend, p.timesteps, p.steps, len(p.outputs)) != (first.backend, first.timesteps, first.steps,
                                                                 len(first.outputs)):
            raise RuntimeError("shards of one run disagree on the backend, timesteps or outputs")

    def cat(arrays: list) -> np.ndarray | None:
        return None if arrays[0] is None else np.concatenate(arrays)

    stats, tally = dict(first.stats), None
    if first.tally is not None:
        counts = {k: sum((p.tally.counts[k] for p in parts[1:]), start=first.tally.counts[k])
                  for k in first.tally.counts}
        tally = Tally(counts, first.tally.derive)
        stats = tally.derive(counts)
    return RunResult(first.backend, [cat([p.outputs[i] for p in parts]) for i in range(len(first.outputs))],
                     voltages=[cat([p.voltages[i] for p in parts]) for i in range(len(first.voltages))],
                     recorded={k: cat([p.recorded[k] for p in parts]) for k in first.recorded},
                     timesteps=first.timesteps, steps=first.steps,
                     spikes=sum(p.spikes for p in parts), synaptic_ops=sum(p.synaptic_ops for p in parts),
                     stats=stats, tally=tally)


# ------------------------------------------------------------------------------ jobs


@dataclass
class RunJob:
    """``nmc run`` on a shard: ``artifact`` (a loaded image or graph) prepared for ``backend``
    once per worker, then run on ``inputs[start:stop]``."""

    artifact: Any
    backend: str
    inputs: list[np.ndarray]
    timesteps: int | None = None
    record: str | None = None

    def load(self) -> Callable[[int, int], RunResult]:
        from nmc.runner import prepare

        execute = prepare(self.artifact, self.backend)
        return lambda start, stop: execute([a[start:stop] for a in self.inputs], timesteps=self.timesteps,
                                           record=self.record)


@dataclass
class PredictJob:
    """``nmc eval`` on a shard: the classes and totals of ``x[start:stop]`` by ``graph`` on
    ``backend`` (:func:`nmc.evaluation.predict_range`, as the single-process run calls it)."""

    graph: Any
    backend: str
    x: np.ndarray

    def load(self) -> Callable[[int, int], tuple[np.ndarray, dict]]:
        from nmc.evaluation import predict_range
        from nmc.runner import prepare

        execute = prepare(self.graph, self.backend)
        return lambda start, stop: predict_range(execute, self.x, start, stop)


_LOADED: OrderedDict[str, Callable] = OrderedDict()  # in a worker process: job key -> loaded job


def _shard(key: str, box: list, start: int, stop: int) -> tuple[Any, dict]:
    """The Ray task: shard ``[start, stop)`` of the job in ``box`` (a list holding its object
    reference, so that Ray hands over the reference and the job is fetched only by a worker
    that has not loaded it yet).  Returns the part and where and how it was computed."""
    import ray

    run = _LOADED.pop(key, None)
    fresh = run is None
    began = time.perf_counter()
    if fresh:
        run = ray.get(box[0]).load()
    load_s = time.perf_counter() - began
    _LOADED[key] = run
    while len(_LOADED) > KEEP:
        _LOADED.popitem(last=False)
    worker = (ray.get_runtime_context().get_node_id(), os.getpid())
    return run(start, stop), {"worker": worker, "loaded": fresh, "load_s": load_s}


# ---------------------------------------------------------------------------- the cluster


_REMOTE = None  # the Ray task of _shard, made once per process


def _remote(ray):
    global _REMOTE
    if _REMOTE is None:
        _REMOTE = ray.remote(_shard)
    return _REMOTE


def _import_ray():
    try:
        import ray
    except ImportError:
        raise NmcError("--cluster needs Ray, which is not installed", hint=INSTALL_HINT) from None
    return ray


def _check_syntax(address: str) -> tuple[str, int]:
    """(host, port) of ``HOST:PORT`` or ``ray://HOST:PORT`` (UsageError for anything else)."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit():
        raise UsageError(f"--cluster expects auto, HOST:PORT or ray://HOST:PORT, got '{address}'")
    return host.strip("[]"), int(port)


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """NmcError unless ``address`` (``HOST:PORT`` or ``ray://HOST:PORT``) accepts a TCP
    connection within ``timeout_s``: Ray itself retries an unreachable address for minutes."""
    import socket

    host, port = _check_syntax(address)
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as err:
        raise NmcError(f"cannot reach the Ray cluster at '{address}': {err.strerror or err}",
                       hint="start one with 'ray start --head' (then --cluster auto finds it), "
                            "or give the address of its head node") from None


class Cluster:
    """A connection to a Ray cluster for the length of a ``with`` block.

    ``address``: ``"auto"`` uses the cluster this process is already connected to, else
    ``ray.init(address="auto")`` (the cluster in ``RAY_ADDRESS``, else the latest one started
    on this machine with ``ray start``, else any running on this machine), else starts a local
    cluster with one worker per CPU for the length of the block.  Any other value is a Ray
    address (``HOST:PORT`` of a head node, or ``ray://HOST:PORT`` for Ray Client) to connect to.

    After a run: ``shards`` (shards run), ``loads`` (times a worker process loaded a job) and
    ``workers`` (the distinct worker processes whose results came back), counted over the
    block; ``load_s``: the longest load of the last :meth:`map`."""

    def __init__(self, address: str):
        self.address = address
        self.where = ""
        self.cpus = 0
        self.shards = self.loads = 0
        self.workers: set = set()
        self.load_s = 0.0
        self._owned = False

    def __enter__(self) -> Cluster:
        if self.address != "auto":
            _check_syntax(self.address)
        ray = self.ray = _import_ray()
        quiet = {"logging_level": logging.ERROR, "log_to_driver": False}
        if self.address == "auto":
            if ray.is_initialized():
                self.where = "the Ray cluster this process is connected to"
            else:
                try:
                    ray.init(address="auto", **quiet)
                    self.where = "a running Ray cluster"
                except ConnectionError as err:
                    if NOT_FOUND not in str(err):  # one was found, and refused us
                        raise NmcError(f"cannot connect to the Ray cluster --cluster auto found: {err}",
                                       hint=AUTH_HINT) from None
                    ray.init(address="local", include_dashboard=False, **quiet)
                    self.where = "a local Ray cluster"
                self._owned = True
        else:
            _check_reachable(self.address)
            if ray.is_initialized():
                raise NmcError(f"this process is already connected to a Ray cluster, not to '{self.address}'",
                               hint="use auto for the cluster it is connected to")
            try:
                ray.init(address=self.address, **quiet)
            except (ConnectionError, ValueError, RuntimeError) as err:
                raise NmcError(f"cannot connect to the Ray cluster at '{self.address}': {err}",
                               hint="is it a Ray head node's GCS port (6379 by default; ray:// for Ray Client)? "
                                    + AUTH_HINT) from None
            self._owned = True
            self.where = f"the Ray cluster at {self.address}"
        self.cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        return self

    def __exit__(self, *exc) -> None:
        if self._owned:
            self.ray.shutdown()

    def summary(self) -> str:
        return (f"cluster: {self.where}, {self.cpus} CPUs; {self.shards} shards on {len(self.workers)} worker "
                f"processes, {self.loads} loads")

    def map(self, job: Any, n: int, bar=None, align: int = 1) -> list:
        """``job.load()(start, stop)`` for the shards of ``n`` samples (:func:`shard_ranges`,
        boundaries multiples of ``align``), on the cluster; the parts in sample order.  ``bar``:
        a progress bar, advanced by each shard's samples as it completes."""
        ray = self.ray
        ranges = shard_ranges(n, SHARDS_PER_CPU * self.cpus, align)
        box = [ray.put(job)]
        key = box[0].hex()
        env = {k: v for k, v in os.environ.items() if k.startswith("NMC_")}  # limits, cache settings
        task = _remote(ray).options(max_retries=MAX_RETRIES, num_cpus=1,
                                    **({"runtime_env": {"env_vars": env}} if env else {}))
        pending = {task.remote(key, box, start, stop): i for i, (start, stop) in enumerate(ranges)}
        received = []
        self.load_s = 0.0
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    i = pending.pop(ref)
                    part, info = self._get(ref, ranges[i], n)
                    received.append((i, part))
                    self.workers.add(info["worker"])
                    self.loads += info["loaded"]
                    self.load_s = max(self.load_s, info["load_s"])
                    if bar is not None:
                        bar.update(ranges[i][1] - ranges[i][0])
        finally:
            for ref in pending:  # after a failure the other shards are of no use
                ray.cancel(ref, force=True)
        self.shards += len(ranges)
        return assemble(ranges, received, n)

    def _get(self, ref, shard: tuple[int, int], n: int):
        ray = self.ray
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as err:  # the task's own error: raised as a local run raises it
            if isinstance(err.cause, NmcError):  # what it says of the arrays, it says of the shard's
                err.cause.notes.append(f"found on the cluster in samples {shard[0]}..{shard[1]}, one shard of {n}")
            raise err.cause from err
        except ray.exceptions.RayError as err:  # a worker or node lost more often than Ray retries
            raise NmcError(f"samples {shard[0]}..{shard[1]} could not be run on the cluster "
                           f"(tried {MAX_RETRIES + 1} times): {type(err).__name__}: {err}",
                           hint="check the cluster's nodes and memory (ray status), then run again") from None

    def run(self, artifact: Any, inputs: np.ndarray | Sequence[np.ndarray], *, backend: str = "reference",
            timesteps: int | None = None, record: str | None = None, **load_options) -> RunResult:
        """:func:`nmc.runner.run` with the samples sharded over the cluster: the same result but
        for ``compile_s`` (loading here plus the longest load on a worker) and ``run_s`` (from
        the first shard sent to the last result back)."""
        from nmc.evaluation import progress
        from nmc.runner import get_backend, load_artifact

        get_backend(backend)
        began = time.perf_counter()
        loaded = load_artifact(artifact, **load_options)  # checked here: bad input fails before any task
        compile_s = time.perf_counter() - began
        batch = [inputs] if isinstance(inputs, np.ndarray) else list(inputs)
        n = len(batch[0]) if batch else 0
        began = time.perf_counter()
        with progress(n, "run") as bar:
            parts = self.map(RunJob(loaded, backend, batch, timesteps, record), n, bar)
        result = merge_results(parts)
        result.run_s = time.perf_counter() - began
        result.compile_s = compile_s + self.load_s
        return result

    def predict(self, graph: Any, x: np.ndarray, backend: str, bar) -> tuple[np.ndarray, dict]:
        """``nmc.evaluation``'s ``predict`` on the cluster: shards of whole ``CHUNK`` blocks, so
        every executor call is the one the single-process run makes."""
        from nmc.evaluation import CHUNK

        parts = self.map(PredictJob(graph, backend, x), len(x), bar, align=CHUNK)
        totals = {"spikes": sum(t["spikes"] for _, t in parts), "synaptic_ops": sum(t["synaptic_ops"] for _, t in parts),
                  "steps": parts[-1][1]["steps"]}
        return np.concatenate([c for c, _ in parts]), totals
