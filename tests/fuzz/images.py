"""Valid-CRC image mutation: edit a section's content and rebuild the image with correct CRCs."""

from __future__ import annotations

import json

import numpy as np

from nmc.targets.image import Image, decode_image, encode_image
from nmc.targets.mesh.sections import pack, unpack


def arrays(data: bytes, section: str) -> dict[str, np.ndarray]:
    return {k: np.array(v) for k, v in unpack(decode_image(data).sections[section], section).items()}


def with_section(data: bytes, section: str, payload: bytes | None) -> bytes:
    """The image with ``section`` replaced (or removed, for None); CRCs recomputed."""
    img = decode_image(data)
    sections = dict(img.sections)
    if payload is None:
        sections.pop(section, None)
    else:
        sections[section] = payload
    return encode_image(Image(img.target, img.chip_sha256, sections))


def edit_arrays(data: bytes, section: str, edit) -> bytes:
    """``edit(arrays)`` changes the dict of arrays of a mesh section in place."""
    a = arrays(data, section)
    edit(a)
    return with_section(data, section, _pack_raw(a))


def _pack_raw(a: dict[str, np.ndarray]) -> bytes:
    """Like :func:`pack`, but keeps out-of-range values (e.g. -1 in a uint8 field) visible by
    widening to int64 where needed."""
    return pack({k: np.asarray(v) for k, v in a.items()})


def meta(data: bytes) -> dict:
    return json.loads(arrays(data, "mesh.ports")["meta"].tobytes().decode())


def edit_meta(data: bytes, edit=None, replace=None) -> bytes:
    """``edit(meta)`` changes the ports' meta JSON in place, or ``replace`` replaces it."""
    m = meta(data)
    if edit is not None:
        edit(m)
    else:
        m = replace
    raw = np.frombuffer(json.dumps(m).encode(), np.uint8)
    return edit_arrays(data, "mesh.ports", lambda a: a.__setitem__("meta", raw))


def edit_manifest(data: bytes, edit=None, replace=None) -> bytes:
    img = decode_image(data)
    m = json.loads(img.sections["manifest"])
    if edit is not None:
        edit(m)
    else:
        m = replace
    return with_section(data, "manifest", json.dumps(m).encode())
