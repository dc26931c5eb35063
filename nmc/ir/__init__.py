"""The graph IR: ops in SSA form, their dialects, textual form and verifier (docs/design.md §3)."""

from nmc.ir import ann, hw, snn  # noqa: F401  (registers the dialects' ops)
from nmc.ir.core import OPS, Blob, Graph, Op, Random, Splat, Value, VerifyError, param_array
from nmc.ir.parser import parse_ir, parse_ir_cases
from nmc.ir.printer import print_graph
from nmc.ir.types import CurrentType, SpikeType, TensorType
from nmc.ir.verifier import verify

__all__ = [
    "OPS", "Blob", "Graph", "Op", "Random", "Splat", "Value", "VerifyError", "param_array",
    "parse_ir", "parse_ir_cases", "print_graph", "verify",
    "CurrentType", "SpikeType", "TensorType",
]
