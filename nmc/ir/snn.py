"""The ``snn`` dialect: spiking networks, as conversion (or the NIR frontend) produces them.

A network is populations of neurons joined by projections::

    %s  = snn.encode(%x) {encoding = rate} : spikes<1x28x28>
    %c1 = snn.project(%s) {kind = dense, weight = @w1} : current<100>
    %h  = snn.population(%c1, %r) {threshold = 1.0} : spikes<100>
    %r  = snn.project(%h) {delay = 1, kind = dense, weight = @wr} : current<100>
    %y  = snn.decode(%h) {mode = count} : tensor<100xf32>

A population's operands are the currents of the projections into it.  A population may name a
projection defined later (``%r`` above): that closes a recurrent loop, legal because every
projection delays by at least one step.  Currents meet neurons by flat (C-order) index, so a
projection may deliver ``current<784>`` into a population of ``spikes<16x7x7>``: that is how
flatten and reshape become index maps instead of neurons.  Semantics: docs/design.md §5,
:mod:`nmc.semantics`.
"""

from __future__ import annotations

from nmc.ir.ann import check_window
from nmc.ir.core import (
    Blob,
    Op,
    blob,
    enum,
    integer,
    ints,
    operand,
    operands,
    param,
    real,
    register,
    require,
)
from nmc.ir.types import CurrentType, SpikeType, TensorType
from nmc.lazy import lazy_import

np = lazy_import("numpy")

ENCODINGS = ("rate", "poisson", "current", "spikes")
PROJECTION_KINDS = ("dense", "conv2d", "pool", "maxgate", "one_to_one", "sparse")
WINDOWED_KINDS = ("conv2d", "pool", "maxgate")  # kinds with strides and pads
DECAY_ONE = 4096  # decays du, dv are in units of 1/4096
LEAKS = ("linear", "shift")  # a population's decay arithmetic (snn.population, docs/ir.md)
RESETS = ("subtract", "zero", "subtract_delayed", "zero_delayed")  # snn.population reset modes (nmc/neuron.py)
SHIFT_SYNAPSES = 2  # synaptic currents per neuron under leak = shift (du, du2)
MAX_SPIKES = 255  # the most events a population's neuron emits in one step (snn.population max_spikes)

MAX_DELAY = (1 << 16) - 1  # the longest synaptic delay, in steps (a mesh image's syn_delay field)
MAX_EXPONENT = 30  # the largest weight_exponent_max a chip description may give (issue 22)


@register("snn.encode")
class Encode(Op):
    """Host input → one value per input element per step (docs/design.md §5, Encoding).

    ``rate``/``poisson`` take ``x`` in [0, 1]; ``current`` injects ``x * scale`` every step;
    ``spikes`` takes a spike train ``[samples, T, ...]`` whose per-step shape is ``x``'s.
    ``seed`` drives ``poisson``.  ``phase`` (``rate`` only, in [0, 256)) is the rate
    accumulator's start in its quanta of 1/256: 0 fires ``⌊T·q/256⌋`` spikes in T steps,
    128 ``⌊T·q/256 + ½⌋`` — the count rounded to nearest, as an IF neuron with v0 = θ/2."""

    x: object = operand()
    encoding: str = enum(*ENCODINGS, default="rate")
    seed: int = integer(0)
    scale: float = real(1.0)
    phase: int = integer(0)

    def infer_type(self):
        t = self.x.type
        require(self, isinstance(t, TensorType), f"expects a tensor input, got {t}")
        require(self, self.phase == 0 or self.encoding == "rate", f"encoding '{self.encoding}' takes no phase")
        require(self, 0 <= self.phase < 256, f"phase must lie in [0, 256) quanta of 1/256, got {self.phase}")
        return SpikeType(t.shape)


def _window_default(value):
    """Default for conv2d/pool window fields: ``value`` per axis for windowed kinds, else empty."""

    def fn(op):
        if op.kind == "conv2d":
            n = 2
        elif op.kind in ("pool", "maxgate"):
            n = len(op.kernel)
        else:
            return ()
        return (value,) * (n * (2 if value == 0 else 1))

    return fn


@register("snn.project")
class Project(Op):
    """Synapses from a source (population or encoder) delivering current into a population.

    kind:
      dense       weight ``[out, in]`` over the flattened source; result ``[out]`` or ``shape``.
      conv2d      weight ``[out, in/groups, kh, kw]``, strides/pads/dilations/groups as ann.conv;
                  the weights stay shared (never expanded here).
      pool        sum over ``kernel`` windows times ``weight`` (a number, or a blob broadcast
                  to the output shape), strides/pads as ann.avgpool.
      maxgate     a max-pool gate (Rueckauer et al. 2017), windows as ``pool``, stateful: per
                  sample the projection keeps a running count ``c[j]`` of every source neuron
                  j, the sum of the values it has delivered so far including the current
                  delivery (for spikes: its spike count; zero at the start of each run, updated
                  once per step in which the source delivers).  For each output cell the winner
                  is the window cell with the largest count, ties to the first cell in
                  row-major window order; pad cells never win (a window of pads alone gets no
                  current).  The current into the cell is ``weight · s[winner]``, ``s`` the
                  delivered source values: only the window's most active input passes.
      one_to_one  source neuron i drives target neuron i with ``weight`` (a number or a blob
                  of the source's shape); result the source's shape or ``shape``.
      sparse      CSR by presynaptic neuron: synapses of source j are ``indptr[j]:indptr[j+1]``
                  into ``indices`` (flat target index) and ``weight``; result ``shape``.

    The delivered current is ``(Σ w·s) · 2**exponent``, ``delay`` (≥ 1) steps after the spikes.
    """

    src: object = operand()
    kind: str = enum(*PROJECTION_KINDS)
    weight: object = param()
    exponent: int = integer(0)
    delay: int = integer(1)
    kernel: tuple = ints()
    strides: tuple = ints(_window_default(1))
    pads: tuple = ints(_window_default(0))
    dilations: tuple = ints(lambda op: (1, 1) if op.kind == "conv2d" else ())
    groups: int = integer(1)
    indptr: object = blob(optional=True)
    indices: object = blob(optional=True)
    shape: tuple = ints()

    @property
    def is_integer(self) -> bool:
        w = self.weight.data if isinstance(self.weight, Blob) else np.asarray(self.weight)
        return np.issubdtype(w.dtype, np.integer)

    def _weight_blob(self, ndim: int, what: str) -> tuple[int, ...]:
        require(self, isinstance(self.weight, Blob) and self.weight.data.ndim == ndim,
                f"kind '{self.kind}' needs a weight blob {what}")
        return self.weight.shape

    def _only(self, allowed: set[str]):
        for name, field in (("kernel", "kernel"), ("shape", "shape"), ("indptr", "indptr"), ("indices", "indices")):
            value = getattr(self, field)
            present = value is not None and value != ()
            require(self, not present or name in allowed, f"kind '{self.kind}' takes no '{name}'")
        if self.kind not in WINDOWED_KINDS:
            for name in ("strides", "pads"):
                require(self, getattr(self, name) == (), f"kind '{self.kind}' takes no '{name}'")
        if self.kind != "conv2d":
            require(self, self.dilations == () and self.groups == 1, f"kind '{self.kind}' takes no dilations or groups")

    def _reshaped(self, natural: tuple[int, ...]) -> CurrentType:
        if not self.shape:
            return CurrentType(natural)
        require(self, all(d >= 1 for d in self.shape) and int(np.prod(self.shape)) == int(np.prod(natural)),
                f"shape {list(self.shape)} does not hold {int(np.prod(natural))} neurons")
        return CurrentType(tuple(self.shape))

    def infer_type(self):
        src = self.src.type
        require(self, isinstance(src, SpikeType), f"expects spikes as its source, got {src}")
        require(self, 1 <= self.delay <= MAX_DELAY, f"delay must lie in 1..{MAX_DELAY} steps, got {self.delay}")
        require(self, 0 <= self.exponent <= MAX_EXPONENT,
                f"exponent must lie in 0..{MAX_EXPONENT} (a chip's weight_exponent_max is at most that), got {self.exponent}")
        if self.kind == "dense":
            self._only({"shape"})
            w = self._weight_blob(2, "[out, in]")
            require(self, w[1] == src.size, f"weight {list(w)} does not match a source of {src.size} neurons ({src})")
            return self._reshaped((w[0],))
        if self.kind == "conv2d":
            self._only(set())
            w = self._weight_blob(4, "[out, in/groups, kh, kw]")
            require(self, src.rank == 3, f"kind 'conv2d' needs a [C, H, W] source, got {src}")
            g = self.groups
            require(self, g >= 1 and src.shape[0] % g == 0 and w[0] % g == 0 and w[1] * g == src.shape[0],
                    f"weight {list(w)} with groups={g} does not match source {src}")
            out = check_window(self, TensorType(src.shape), w[2:])
            return CurrentType((w[0], *out))
        if self.kind in ("pool", "maxgate"):
            self._only({"kernel"})
            require(self, len(self.kernel) == 2 and all(k >= 1 for k in self.kernel), f"needs a 2-D kernel, got {list(self.kernel)}")
            require(self, src.rank == 3, f"kind '{self.kind}' needs a [C, H, W] source, got {src}")
            out = (src.shape[0], *check_window(self, TensorType(src.shape), self.kernel))
            self._require_broadcast(out, "the output")
            return CurrentType(out)
        if self.kind == "one_to_one":
            self._only({"shape"})
            self._require_broadcast(src.shape, "the source")
            return self._reshaped(src.shape)
        # sparse
        self._only({"shape", "indptr", "indices"})
        require(self, bool(self.shape), "kind 'sparse' needs the target 'shape'")
        require(self, self.indptr is not None and self.indices is not None, "kind 'sparse' needs 'indptr' and 'indices'")
        ip, ix = self.indptr.data, self.indices.data
        require(self, ip.ndim == 1 and ip.size == src.size + 1 and np.issubdtype(ip.dtype, np.integer),
                f"indptr must be {src.size + 1} integers (source size + 1), got {self.indptr.type}")
        nnz = int(ip[-1]) if ip.size else 0
        require(self, ip[0] == 0 and bool(np.all(np.diff(ip) >= 0)), "indptr must start at 0 and never decrease")
        require(self, ix.ndim == 1 and ix.size == nnz and np.issubdtype(ix.dtype, np.integer),
                f"indices must be {nnz} integers (indptr[-1]), got {self.indices.type}")
        size = int(np.prod(self.shape))
        require(self, nnz == 0 or (ix.min() >= 0 and ix.max() < size), f"indices must lie in [0, {size})")
        w = self._weight_blob(1, f"of {nnz} synapse weights")
        require(self, w == (nnz,), f"weight must hold {nnz} synapse weights, got {list(w)}")
        return CurrentType(tuple(self.shape))

    def _require_broadcast(self, shape: tuple[int, ...], what: str):
        if isinstance(self.weight, Blob):
            try:
                ok = np.broadcast_shapes(shape, self.weight.shape) == tuple(shape)
            except ValueError:
                ok = False
            require(self, ok, f"weight {list(self.weight.shape)} does not broadcast to {what} {list(shape)}")


@register("snn.population")
class Population(Op):
    """Current-based LIF neurons (docs/design.md §5); IF is ``du = 4096, dv = 0``.

    Parameters are numbers or blobs broadcast to the population's shape.  Decays ``du``,
    ``dv`` lie in [0, 4096] (units of 1/4096 per step); integer populations need integers.  ``bits = 0``: float
    semantics; ``bits = B``: integer semantics with current and voltage saturated to B-bit
    signed range.  The type is declared: ``: spikes<500>``.

    ``leak = shift`` (integer populations only) is the bit-shift neuron of sensor-edge chips
    (docs/edge-target.md, :class:`nmc.neuron.ShiftNeuronState`): two synaptic currents per
    neuron; ``synapse`` names, per input, the current it feeds (0 or 1; empty: all 0); ``du``,
    ``du2`` and ``dv`` are bit shifts in [0, bits − 1] (a value x decays by ``x >> d``, at least
    one unit toward zero); the threshold is positive, a neuron fires when ``v ≥ threshold`` and
    may emit up to ``max_spikes`` events per step, losing the threshold for each.

    ``max_spikes = B > 1`` on a linear population is a burst (graded-spike) neuron
    (:class:`nmc.neuron.NeuronState`): where ``v > threshold`` it emits
    ``k = min(B, ⌈v / threshold⌉ − 1)`` spikes in one step (the whole thresholds strictly under
    ``v``), sent as one event of value ``k``, and loses ``k · threshold`` (reset subtract; reset
    zero: ``v = 0``).  ``B = 1`` is the ordinary neuron.  It needs a positive finite threshold
    and a reset in the step it fires."""

    FORWARD_REFS = True
    currents: list = operands()
    threshold: object = param(1.0)
    bias: object = param(0.0)
    du: object = param(DECAY_ONE)
    dv: object = param(0)
    v0: object = param(0.0)
    reset: str = enum(*RESETS, default="subtract")
    bits: int = integer(0)
    leak: str = enum(*LEAKS, default="linear")
    du2: object = param(0)
    synapse: tuple = ints()
    max_spikes: int = integer(1)

    PARAMS = ("threshold", "bias", "du", "dv", "v0")  # du2 belongs to leak = shift (_verify_leak)

    def verify(self):
        t = self.result.type
        require(self, isinstance(t, SpikeType), f"must have a spikes type, got {t}")
        for i, c in enumerate(self.currents):
            require(self, isinstance(c.type, CurrentType) and c.type.size == t.size,
                    f"input {i} delivers {c.type}, expected current for {t.size} neurons ({t})")
            owner = c.owner
            require(self, owner is not None and owner.KIND == "snn.project",
                    f"input {i} must be a projection's current")
        require(self, self.bits == 0 or 2 <= self.bits <= 32, f"bits must be 0 (float) or 2..32, got {self.bits}")
        for name in self.PARAMS:
            value = getattr(self, name)
            if isinstance(value, Blob):
                try:
                    ok = np.broadcast_shapes(t.shape, value.shape) == t.shape
                except ValueError:
                    ok = False
                require(self, ok, f"{name} {list(value.shape)} does not broadcast to {t}")
            arr = value.data if isinstance(value, Blob) else np.asarray(value)
            require(self, not np.any(np.isnan(arr)), f"{name} contains NaN")
            if name in ("du", "dv") and self.leak == "linear":
                require(self, bool(np.all((arr >= 0) & (arr <= DECAY_ONE))), f"{name} must lie in [0, {DECAY_ONE}]")
        if self.bits:
            limit = 2 ** (self.bits - 1)
            for name in self.PARAMS:
                value = getattr(self, name)
                arr = value.data if isinstance(value, Blob) else np.asarray(value)
                require(self, bool(np.all(arr == np.round(arr))), f"{name} must be integers in an integer ({self.bits}-bit) population")
                if name in ("threshold", "bias", "v0"):
                    require(self, bool(np.all((arr >= -limit) & (arr < limit))),
                            f"{name} does not fit the {self.bits}-bit state")
        self._verify_leak()

    def _verify_leak(self):
        """The rules of ``leak = shift`` (class docstring); a linear population takes none of its fields."""
        require(self, 1 <= self.max_spikes <= MAX_SPIKES, f"max_spikes must lie in 1..{MAX_SPIKES}, got {self.max_spikes}")
        if self.leak == "linear":
            require(self, not self.synapse and np.all(self.param_data("du2") == 0),
                    "synapse and du2 apply to leak = shift only")
            if self.max_spikes > 1:  # a burst neuron (class docstring)
                theta = self.param_data("threshold")
                require(self, bool(np.all(np.isfinite(theta) & (theta > 0))),
                        f"a burst population (max_spikes = {self.max_spikes}) needs positive finite thresholds")
                require(self, self.reset in ("subtract", "zero"),
                        f"a burst population (max_spikes = {self.max_spikes}) resets in the step it fires "
                        f"(subtract or zero), not '{self.reset}'")
            return
        require(self, self.bits > 0, "leak = shift needs an integer population (bits > 0)")
        require(self, self.reset in ("subtract", "zero"), "leak = shift resets in the step a neuron fires (subtract or zero)")
        require(self, not self.synapse or len(self.synapse) == len(self.currents),
                f"synapse names {len(self.synapse)} inputs; the population has {len(self.currents)}")
        require(self, all(0 <= k < SHIFT_SYNAPSES for k in self.synapse),
                f"synapse values must lie in [0, {SHIFT_SYNAPSES - 1}], got {list(self.synapse)}")
        du2 = self.du2
        if isinstance(du2, Blob):
            shape = self.result.type.shape
            require(self, _broadcasts(du2.shape, shape), f"du2 {list(du2.shape)} does not broadcast to {self.result.type}")
        for name in ("du", "du2", "dv"):
            arr = self.param_data(name)
            require(self, bool(np.all((arr == np.round(arr)) & (arr >= 0) & (arr < self.bits))),
                    f"{name} is a bit shift under leak = shift and must lie in [0, {self.bits - 1}]")
        require(self, bool(np.all(self.param_data("threshold") >= 1)), "leak = shift needs a threshold of at least 1")

    def param_data(self, name: str) -> np.ndarray:
        value = getattr(self, name)
        return value.data if isinstance(value, Blob) else np.asarray(value)


def _broadcasts(shape: tuple[int, ...], to: tuple[int, ...]) -> bool:
    try:
        return np.broadcast_shapes(to, shape) == tuple(to)
    except ValueError:
        return False


@register("snn.decode")
class Decode(Op):
    """Population → host output.  ``count``: spikes over the run (ties broken by final
    voltage); ``membrane``: the population's final voltage (a non-spiking read-out)."""

    x: object = operand()
    mode: str = enum("count", "membrane", default="count")

    def infer_type(self):
        t = self.x.type
        require(self, isinstance(t, SpikeType), f"expects a population's spikes, got {t}")
        return TensorType(t.shape, "f32")

    def verify(self):
        require(self, self.x.owner is not None and self.x.owner.KIND == "snn.population",
                "must read a population")
