"""nmc: a compiler toolchain from trained neural networks to neuromorphic chips.

::

    import nmc
    g = nmc.load("model.nmir")                 # or .onnx, .nir, .nmd as frontends land
    out = nmc.run(g, x)                         # outputs and statistics (reference semantics)
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


def optimize(graph, pipeline: str, **context):
    """Run a pass pipeline over ``graph`` in place and return it (``context``: PassContext fields)."""
    from nmc.passmanager import PassContext, run_pipeline

    return run_pipeline(graph, pipeline, PassContext(**context))
