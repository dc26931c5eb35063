"""Checks of an image's own sections' content (issue 22): the manifest's keys and types."""

from __future__ import annotations

from nmc.diagnostics import Loc, NmcError

# key -> accepted types (None: JSON null)
_MANIFEST_TYPES = {
    "compiler": (str,), "source_sha256": (str, type(None)), "pipeline": (str, type(None)),
    "target": (str,), "target_class": (str, type(None)), "timesteps": (int, type(None)),
    "latency_steps": (int, type(None)), "seed": (int, type(None)), "opt_level": (int, type(None)),
    "resources": (dict,), "statistics": (dict, list),
}


def check_manifest(manifest, filename: str) -> None:
    """The manifest must be a JSON object whose known keys have their types."""
    def fail(msg: str):
        return NmcError(f"the manifest section {msg}", Loc(filename),
                        hint="the image is damaged or was not written by this nmc; compile it again")

    if not isinstance(manifest, dict):
        raise fail(f"must be a JSON object, got a JSON {type(manifest).__name__}")
    for key, types in _MANIFEST_TYPES.items():
        if key in manifest:
            v = manifest[key]
            if isinstance(v, bool) or not isinstance(v, types):
                raise fail(f"has '{key}' of the wrong type ({type(v).__name__})")
            if isinstance(v, int) and not isinstance(v, bool) and key in ("timesteps", "latency_steps") and v < 1:
                raise fail(f"has '{key}' = {v}; it must be at least 1")


def check_image(img) -> None:
    """Before an image runs or is shown: the manifest, the chip description (``parse_chip``) and
    every field of the chip class's hardware sections (the class's ``check_image``)."""
    img.manifest  # noqa: B018 — checked by the property
    if "chip" in img.sections:
        from nmc.targets.classes import class_of_image

        check = getattr(class_of_image(img), "check_image", None)
        if check is not None:
            check(img.sections)
