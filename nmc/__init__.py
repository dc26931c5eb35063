"""nmc: a compiler toolchain from trained neural networks to neuromorphic chips."""

__version__ = "0.1.0"
