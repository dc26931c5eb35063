"""Targets (``nmc.targets``): chip descriptions, images, emulators and the CPU runtime."""
