"""Exporters: writers of model files other tools read (NIR, :mod:`nmc.exporters.nir`)."""
