"""``nmc run/eval --cluster`` (nmc.cluster): the shards tile the samples and come back in order
whatever the completion order; shard results merge into exactly the single-process result
(outputs, spike records, counts, the emulator's derived figures); without Ray the option is
refused with the install hint, and nmc never imports Ray unless asked.  The slow tier starts a
local two-CPU Ray cluster and checks that files and reports are identical to the single-process
run's, that each worker process loads a job once, and that a worker killed in the middle of a
run is replaced by Ray's retry with nothing lost or counted twice."""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nmc import evaluation
from nmc.cli import main
from nmc.cluster import HOST_FIELDS, Cluster, PredictJob, RunJob, assemble, merge_results, shard_ranges
from nmc.diagnostics import NmcError
from nmc.runner import run
from tests.test_emulator import image_of, random_graph

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


# ------------------------------------------------------------------ fast tier: no Ray


def test_shard_ranges_tile_the_samples():
    for n, shards, align in itertools.product([0, 1, 2, 7, 250, 251, 1000, 1003], [1, 2, 3, 8, 64], [1, 3, 250]):
        ranges = shard_ranges(n, shards, align)
        assert ranges[0][0] == 0 and ranges[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
        assert all(a % align == 0 for a, _ in ranges)
        if n:
            assert all(b > a for a, b in ranges)
            assert len(ranges) == min(shards, -(-n // align))
            blocks = [-(-(b - a) // align) for a, b in ranges]
            assert max(blocks) - min(blocks) <= 1, (n, shards, align, ranges)  # nearly equal
        else:
            assert ranges == [(0, 0)]


def test_assemble_puts_parts_in_order_and_refuses_lost_or_duplicated_shards():
    ranges = shard_ranges(10, 4)
    received = [(i, f"part{i}") for i in range(len(ranges))]
    random.Random(0).shuffle(received)
    assert assemble(ranges, received, 10) == [f"part{i}" for i in range(len(ranges))]
    with pytest.raises(RuntimeError, match="expected each"):
        assemble(ranges, received[1:], 10)
    with pytest.raises(RuntimeError, match="expected each"):
        assemble(ranges, received + received[:1], 10)
    with pytest.raises(RuntimeError, match="do not tile"):
        assemble([(0, 5), (6, 10)], [(0, "a"), (1, "b")], 10)
    with pytest.raises(RuntimeError, match="do not tile"):
        assemble(ranges, received, 11)


def _sharded(job, n: int, shards: int, align: int = 1) -> list:
    """The job's shards run here in a scrambled order, then assembled: what Cluster.map does."""
    ranges = shard_ranges(n, shards, align)
    step = job.load()
    order = list(range(len(ranges)))
    random.Random(n).shuffle(order)
    return assemble(ranges, [(i, step(*ranges[i])) for i in order], n)


def _assert_same_result(got, want):
    assert (got.backend, got.timesteps, got.steps) == (want.backend, want.timesteps, want.steps)
    assert len(got.outputs) == len(want.outputs)
    for a, b in zip(got.outputs, want.outputs):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    assert [v is None for v in got.voltages] == [v is None for v in want.voltages]
    for a, b in zip(got.voltages, want.voltages):
        if a is not None:
            np.testing.assert_array_equal(a, b)
    assert sorted(got.recorded) == sorted(want.recorded)
    for k in want.recorded:
        np.testing.assert_array_equal(got.recorded[k], want.recorded[k])
    assert (got.spikes, got.synaptic_ops) == (want.spikes, want.synaptic_ops)
    assert {k: v for k, v in got.stats.items() if k not in HOST_FIELDS} == \
           {k: v for k, v in want.stats.items() if k not in HOST_FIELDS}


@pytest.mark.parametrize("backend,seed", [("emulator", 1), ("emulator", 5), ("emulator", 11), ("reference", 5),
                                          ("cpu", 11)])
def test_shards_merge_into_the_single_process_result(seed, backend):
    """Random multi-core graphs on a 2x2-chip board: outputs, voltages, every population's
    spikes, counts and (emulator) energy, link loads and hops of the whole batch, exactly."""
    graph, inputs = random_graph(seed)
    rng = np.random.default_rng(seed)
    x = rng.random((23, *inputs[0].shape[1:])).astype(np.float32)
    if graph.walk("snn.encode")[0].encoding == "spikes":
        x = (x < 0.3).astype(np.float32)
    artifact = image_of(graph)[0] if backend == "emulator" else graph
    want = run(artifact, [x], backend=backend, record="all")
    got = merge_results(_sharded(RunJob(artifact, backend, [x], record="all"), len(x), 5))
    _assert_same_result(got, want)
    if backend == "emulator":
        assert got.stats["hops_between_chips"] + got.stats["hops_on_chip"] > 0


def test_eval_shards_make_the_single_process_calls(monkeypatch):
    """Shards of whole CHUNK blocks give nmc eval's classes and totals exactly."""
    monkeypatch.setattr(evaluation, "CHUNK", 7)
    graph, inputs = random_graph(4)
    x = np.random.default_rng(4).random((40, *inputs[0].shape[1:])).astype(np.float32)
    want_classes, want_totals = evaluation._predict(graph, x, "reference", None)
    parts = _sharded(PredictJob(graph, "reference", x), len(x), 3, align=7)
    assert len(parts) == 3
    np.testing.assert_array_equal(np.concatenate([c for c, _ in parts]), want_classes)
    assert sum(t["spikes"] for _, t in parts) == want_totals["spikes"]
    assert sum(t["synaptic_ops"] for _, t in parts) == want_totals["synaptic_ops"]
    assert parts[-1][1]["steps"] == want_totals["steps"]


@pytest.mark.parametrize("command", ["run", "eval"])
def test_cluster_without_ray_is_refused_with_the_install_hint(command, monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    out = tmp_path / "out.json"
    data = str(EXAMPLES / "digits_test.npz")
    args = (["run", str(EXAMPLES / "digits_mlp.nmir"), "--input", data] if command == "run"
            else ["eval", str(EXAMPLES / "digits_mlp.nmir"), "--data", data, "--target", "cpu", "--timesteps", "2"])
    assert main([*args, "--report", str(out), "--cluster", "auto"]) == 1
    err = capsys.readouterr().err
    assert "--cluster needs Ray" in err and "pip install 'nmc[cluster]'" in err
    assert not out.exists()
    with pytest.raises(NmcError, match="needs Ray"):
        Cluster("auto").__enter__()


class FakeRay:
    """What Cluster.__enter__ asks of Ray, recorded; ``ray.init(address="auto")`` fails with
    ``auto_error``.  Only the choice between joining and starting a cluster is checked here;
    the slow tier does both for real."""

    def __init__(self, auto_error: str | None):
        self.auto_error, self.calls, self.initialized = auto_error, [], False

    def is_initialized(self):
        return self.initialized

    def init(self, address=None, **kwargs):
        self.calls.append(address)
        if address == "auto" and self.auto_error:
            raise ConnectionError(self.auto_error)
        self.initialized = True

    def cluster_resources(self):
        return {"CPU": 3.0}

    def shutdown(self):
        self.calls.append("shutdown")


def test_auto_starts_a_local_cluster_only_when_none_is_running(monkeypatch):
    from nmc import cluster

    for error, calls, where in ((None, ["auto"], "a running Ray cluster"),
                                (cluster.NOT_FOUND + ". Please specify ...", ["auto", "local"], "a local Ray cluster")):
        fake = FakeRay(error)
        monkeypatch.setitem(sys.modules, "ray", fake)
        with Cluster("auto") as c:
            assert (fake.calls, c.where, c.cpus) == (calls, where, 3)
        assert fake.calls[-1] == "shutdown"
    fake = FakeRay("Failed to connect to Ray cluster at 10.0.0.1:6379")  # found, but refused us: no local one
    monkeypatch.setitem(sys.modules, "ray", fake)
    with pytest.raises(NmcError, match="cannot connect to the Ray cluster --cluster auto found") as err:
        Cluster("auto").__enter__()
    assert "RAY_AUTH_MODE=token" in str(err.value.hint) and fake.calls == ["auto"]
    fake.initialized = True  # a connection made by the caller is used, and left open
    with Cluster("auto") as c:
        assert c.where == "the Ray cluster this process is connected to"
    assert fake.calls == ["auto"]


@pytest.mark.parametrize("address", ["nonsense", "host:", ":6379", "ray://host:port"])
def test_a_malformed_address_is_a_usage_error(address, capsys):
    args = ["run", str(EXAMPLES / "digits_mlp.nmir"), "--input", str(EXAMPLES / "digits_test.npz")]
    assert main([*args, "--cluster", address]) == 2
    assert "--cluster expects auto, HOST:PORT or ray://HOST:PORT" in capsys.readouterr().err


def test_nmc_imports_ray_only_for_a_cluster():
    probe = ("import nmc, nmc.cli, nmc.cluster, nmc.commands.run, nmc.commands.eval_, nmc.evaluation, sys\n"
             "print(sorted(m for m in sys.modules if m.split('.')[0] == 'ray'))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# -------------------------------------------------------- slow tier: a local Ray cluster


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """A local cluster of two CPUs for this module (nmc's Cluster("auto") then uses this
    connection).  The temporary folder is short: Ray puts sockets in it."""
    import logging
    import shutil
    import tempfile

    import ray

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # KillOnce, in the workers
    temp = tempfile.mkdtemp(prefix="nmc-ray-")
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.ERROR,
             log_to_driver=False, _temp_dir=temp)
    yield ray
    ray.shutdown()
    shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def digits_image(tmp_path_factory):
    import nmc
    from nmc.data import load_inputs

    path = tmp_path_factory.mktemp("cluster") / "digits.nmb"
    nmc.compile(str(EXAMPLES / "digits_mlp.nmir"), target="mesh",
                calibration=load_inputs(str(EXAMPLES / "digits_calib.npz"))[0], timesteps=8).save(str(path))
    return path


def _report(path: Path) -> dict:
    return {k: v for k, v in json.loads(path.read_text()).items() if k not in HOST_FIELDS}


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["emulator", "cpu"])
def test_run_on_the_cluster_writes_what_a_single_process_writes(ray_cluster, digits_image, backend, tmp_path, capsys):
    data = str(EXAMPLES / "digits_test.npz")
    files = {}
    for mode, extra in (("local", []), ("cluster", ["--cluster", "auto"])):
        out = {k: tmp_path / f"{mode}.{k}" for k in ("npy", "npz", "json")}
        assert main(["run", str(digits_image), "--backend", backend, "--input", data, "-o", str(out["npy"]),
                     "--record", str(out["npz"]), "--record-all", "--report", str(out["json"]), *extra]) == 0
        files[mode] = out
    assert "cluster: the Ray cluster this process is connected to, 2 CPUs; 8 shards" in capsys.readouterr().out
    for k in ("npy", "npz"):
        assert files["cluster"][k].read_bytes() == files["local"][k].read_bytes()
    assert _report(files["cluster"]["json"]) == _report(files["local"]["json"])


@pytest.mark.slow
def test_eval_on_the_cluster_reports_what_a_single_process_reports(ray_cluster, tmp_path):
    args = ["eval", str(EXAMPLES / "digits_mlp.nmir"), "--data", str(EXAMPLES / "digits_test.npz"),
            "--calib", str(EXAMPLES / "digits_calib.npz"), "--timesteps", "4,8", "--per-layer"]
    assert main([*args, "--report", str(tmp_path / "local.json")]) == 0
    assert main([*args, "--report", str(tmp_path / "cluster.json"), "--cluster", "auto"]) == 0
    assert (tmp_path / "cluster.json").read_bytes() == (tmp_path / "local.json").read_bytes()


@pytest.mark.slow
def test_an_unreachable_address_fails_at_once_with_a_hint(capsys):
    """Ray would retry it for minutes; nmc tries a TCP connection first (a port just freed)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = ["run", str(EXAMPLES / "digits_mlp.nmir"), "--input", str(EXAMPLES / "digits_test.npz")]
    assert main([*args, "--cluster", f"127.0.0.1:{port}"]) == 1
    err = capsys.readouterr().err
    assert f"cannot reach the Ray cluster at '127.0.0.1:{port}'" in err and "ray start --head" in err


@pytest.mark.slow
def test_bad_input_on_the_cluster_gets_the_single_process_diagnostic(ray_cluster, digits_image, tmp_path, capsys):
    """Checked in a worker (the inputs' shape against the image): the same diagnostic, of the
    shard's arrays and saying so; exit 1, no output."""
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((5, 3), np.float32))
    errors = []
    for extra in ([], ["--cluster", "auto"]):
        out = tmp_path / f"out{len(extra)}.npy"
        assert main(["run", str(digits_image), "--backend", "emulator", "--input", str(wrong), "-o", str(out),
                     *extra]) == 1
        assert not out.exists()
        errors.append(capsys.readouterr().err)
    assert "input 0 has shape [5, 3], expected [samples, 64]" in errors[0]
    first, *rest = errors[1].splitlines()
    assert re.fullmatch(r"error: input 0 has shape \[\d, 3\], expected \[samples, 64\]", first)
    assert re.fullmatch(r"  note: found on the cluster in samples \d\.\.\d, one shard of 5", rest[0])
    assert rest[1:] == errors[0].splitlines()[1:]  # the hint


class KillOnce:
    """A job whose worker process dies, once, on its first shard that does not start at 0:
    ``marker`` is created atomically, so exactly one worker dies however they race."""

    def __init__(self, job, marker: str):
        self.job, self.marker = job, marker

    def load(self):
        step = self.job.load()

        def run(start, stop):
            if start > 0:
                try:
                    os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                except FileExistsError:
                    pass
                else:
                    os._exit(1)
            return step(start, stop)

        return run


@pytest.mark.slow
def test_a_worker_killed_mid_run_is_replaced_and_nothing_is_lost_or_doubled(ray_cluster, digits_image, tmp_path):
    from nmc.data import load_inputs
    from nmc.runner import load_artifact

    x, _ = load_inputs(str(EXAMPLES / "digits_test.npz"))
    image = load_artifact(str(digits_image))
    want = run(image, x, backend="emulator", record="output")
    marker = tmp_path / "killed"
    with Cluster("auto") as cluster:
        parts = cluster.map(KillOnce(RunJob(image, "emulator", [x], record="output"), str(marker)), len(x))
    assert marker.exists()  # a worker did die in the middle of the run
    assert len(parts) == len(shard_ranges(len(x), 8)) == cluster.shards
    assert sum(len(p.outputs[0]) for p in parts) == len(x)
    _assert_same_result(merge_results(parts), want)
    assert cluster.loads == len(cluster.workers)  # each worker process that answered loaded the job once


@pytest.mark.slow
def test_each_worker_process_loads_a_job_once(ray_cluster, digits_image):
    from nmc.data import load_inputs

    x, _ = load_inputs(str(EXAMPLES / "digits_test.npz"))
    with Cluster("auto") as cluster:
        got = cluster.run(str(digits_image), x, backend="emulator")
    assert cluster.shards == 8 and 1 <= len(cluster.workers) <= cluster.shards
    assert cluster.loads == len(cluster.workers)
    _assert_same_result(got, run(str(digits_image), x, backend="emulator"))
