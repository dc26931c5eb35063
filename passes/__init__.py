"""The pass library (``nmc.passes``): importing it registers every pass."""

from nmc.passes import canonicalize  # noqa: F401
