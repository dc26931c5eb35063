"""Targets (``nmc.targets``): chip descriptions, chip classes, images, emulators and the CPU runtime."""

#: the chip ``nmc.compile`` and ``nmc eval`` target when none is named
DEFAULT_CHIP = "mesh"
