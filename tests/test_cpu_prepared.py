"""Starting an image's executor from the prepared cache (targets/cpu/prepared.py): the second
start of an image neither parses its graph nor compiles, and runs bit-identically; a damaged
entry, another kernel choice or a disabled cache never serve a stale executor."""

from __future__ import annotations

import numpy as np
import pytest

from nmc import semantics
from nmc.compiler import compile_graph
from nmc.ir.parser import parse_ir
from nmc.targets import cpu
from nmc.targets.cpu import jit, prepared
from nmc.targets.image import decode_image, encode_image

TEXT = """graph @ff {timesteps = 12}
%x = ann.input : tensor<40xf32>
%s = snn.encode(%x) {encoding = rate} : spikes<40>
%c = snn.project(%s) {kind = dense, weight = random<uniform, seed = 1, scale = 30> : tensor<70x40xi8>} : current<70>
%h = snn.population(%c) {bits = 16, threshold = 40} : spikes<70>
%d = snn.project(%h) {kind = dense, weight = random<uniform, seed = 2, scale = 30> : tensor<5x70xi8>} : current<5>
%o = snn.population(%d) {bits = 16, threshold = 30} : spikes<5>
%y = snn.decode(%o) : tensor<5xf32>
%z = ann.relu(%y) : tensor<5xf32>
ann.output(%z)
"""


@pytest.fixture
def image_bytes():
    return encode_image(compile_graph(parse_ir(TEXT), "cpu"))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NMC_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("NMC_NO_CACHE", raising=False)
    return tmp_path


def _x():
    return np.random.default_rng(3).random((4, 40)).astype(np.float32)


def _check(run, expected):
    got = run([_x()])
    np.testing.assert_array_equal(got.outputs[0], expected.outputs[0])
    np.testing.assert_array_equal(got.voltages[0], expected.voltages[0])
    assert (got.spikes, got.synaptic_ops) == (expected.spike_count, expected.synaptic_ops)


def test_a_second_start_loads_the_prepared_executor_without_parsing(image_bytes, cache):
    ref = semantics.run_snn(parse_ir(TEXT), [_x()])
    first = decode_image(image_bytes)
    _check(cpu.prepare(first), ref)
    assert "graph" in vars(first)  # parsed (the cached property) to compile it
    assert len(list(cache.glob("*.prep"))) == 1
    before = dict(jit.STATS)
    second = decode_image(image_bytes)
    run = cpu.prepare(second, threads=2)
    assert "graph" not in vars(second)  # not parsed
    assert jit.STATS["compiled"] == before["compiled"] and jit.STATS["loaded"] == before["loaded"] + 1
    _check(run, ref)
    assert run([_x()]).stats["from_cache"]


def test_a_damaged_entry_is_prepared_again(image_bytes, cache):
    ref = semantics.run_snn(parse_ir(TEXT), [_x()])
    cpu.prepare(decode_image(image_bytes))
    (entry,) = cache.glob("*.prep")
    data = bytearray(entry.read_bytes())
    data[len(data) // 2] ^= 0xFF
    entry.write_bytes(bytes(data))
    again = decode_image(image_bytes)
    _check(cpu.prepare(again), ref)
    assert "graph" in vars(again)  # the damaged entry was not used
    assert entry.read_bytes() != bytes(data)  # and was replaced


def test_the_key_follows_the_graph_the_choices_and_the_code(image_bytes, monkeypatch):
    keys = {prepared.key(image_bytes, "auto", "auto"), prepared.key(image_bytes, "event", "auto"),
            prepared.key(image_bytes, "auto", "step"), prepared.key(image_bytes + b" ", "auto", "auto")}
    assert len(keys) == 4
    monkeypatch.setattr(prepared, "_FINGERPRINT", ["another version of nmc"])
    assert prepared.key(image_bytes, "auto", "auto") not in keys


def test_nothing_is_kept_when_the_cache_is_disabled(image_bytes, cache, monkeypatch):
    monkeypatch.setenv("NMC_NO_CACHE", "1")
    cpu.prepare(decode_image(image_bytes))
    cpu.prepare(decode_image(image_bytes), cache=False)
    assert list(cache.iterdir()) == []


def test_bad_choices_are_refused_before_the_cache_is_read(image_bytes, cache):
    with pytest.raises(ValueError, match="kernels"):
        cpu.prepare(decode_image(image_bytes), kernels="fast")


def test_the_host_ops_are_split_as_the_reference_splits_them():
    from nmc.targets.cpu.execute import split_host

    text = TEXT.replace("%s = snn.encode(%x)", "%r = ann.relu(%x) : tensor<40xf32>\n%s = snn.encode(%r)")
    g = parse_ir(text)
    pre, _, post = semantics.split_host(g)
    assert split_host(g) == (pre, post) and len(pre) == 2 and len(post) == 2
