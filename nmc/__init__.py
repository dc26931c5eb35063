"""nmc: a compiler toolchain from trained neural networks to neuromorphic chips.

::

    import nmc
    g = nmc.load("model.nmir")                 # or .onnx, .nir, .nmd as frontends land
    out = nmc.run(g, x)                         # outputs and statistics (reference semantics)
    img = nmc.compile(g, target="cpu", calibration=x_cal, timesteps=32)
    img.save("model.nmb")                       # then nmc.run("model.nmb", x)
"""

__version__ = "0.1.0"


def load(path: str, **options):
    """Read a model file into a :class:`nmc.ir.Graph` (the frontend is chosen by content)."""
    from nmc.frontends import load as _load

    return _load(path, **options)


def run(artifact, inputs, *, backend: str = "reference", timesteps=None, record=None, **load_options):
    """Run a path, graph or image on a batch; returns a :class:`nmc.runner.RunResult`."""
    from nmc.runner import run as _run

    return _run(artifact, inputs, backend=backend, timesteps=timesteps, record=record, **load_options)


def compile(graph_or_path, target: str | None = None, calibration=None, timesteps=None, opt_level: int = 2,
            pipeline: str | None = None, seed: int = 0, board: str | None = None, convert: str = "",
            **load_options):
    """Compile a graph or model file for ``target`` (chip name, .toml path or ``"cpu"``; None:
    :data:`nmc.targets.DEFAULT_CHIP`) into an :class:`nmc.targets.image.Image`;
    ``image.save(path)`` writes the ``.nmb`` file.  ``timesteps`` None: 32, or a spiking
    graph's own ``meta.timesteps``.  ``board="auto"``: the smallest board of the target's chips
    that fits (``nmc compile --board auto``).  ``convert``: options of convert-to-spiking in the
    default pipeline (``nmc compile --convert``, e.g. ``"burst=1"``: binary spikes on a chip
    whose default is burst neurons; ``image.stats["notes"]`` says what the default chose)."""
    from nmc.compiler import compile_graph
    from nmc.frontends import load as _load
    from nmc.targets import DEFAULT_CHIP

    path = graph_or_path if isinstance(graph_or_path, str) else None
    graph = _load(path, **load_options) if path is not None else graph_or_path
    return compile_graph(graph, target or DEFAULT_CHIP, calibration=calibration, timesteps=timesteps, opt_level=opt_level,
                         pipeline=pipeline, seed=seed, source_path=path, board=board, convert=convert)


def optimize(graph, pipeline: str, **context):
    """Run a pass pipeline over ``graph`` in place and return it (``context``: PassContext fields)."""
    from nmc.passmanager import PassContext, run_pipeline

    return run_pipeline(graph, pipeline, PassContext(**context))
