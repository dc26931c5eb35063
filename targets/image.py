"""The ``.nmb`` image container (docs/design.md §6, contract; byte layout in docs/image-format.md).

An image is a header, a section table and the section payloads, all little-endian::

    header   magic "NMCIMG\\0\\0" | u32 version | u32 sections | u64 file length
             | 32 bytes chip sha256 | u16 target length | target (UTF-8)
    table    per section, sorted by name: u16 name length | name | u64 offset | u64 length | u32 crc32
    u32      CRC32 of everything above (header and table)
    payloads each at an offset that is a multiple of 8, zero padding between them

Contracts: :func:`encode_image` is a pure function of the image (no timestamps, sections in
name order), so the same inputs give the same bytes.  :func:`decode_image` either returns an
:class:`Image` whose every section passed its CRC, or raises :class:`NmcError` naming the
file and what is wrong (not an image, truncated, corrupt header or section, unknown
version); it never raises anything else, whatever the bytes.
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from nmc.diagnostics import Loc, NmcError

MAGIC = b"NMCIMG\0\0"
FORMAT_VERSION = 1
_HEADER = struct.Struct("<8sIIQ32sH")  # magic, version, sections, file length, chip sha256, target length
_ENTRY = struct.Struct("<QQI")  # offset, length, crc32 (after the u16-prefixed name)
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
ALIGN = 8
MAX_NAME = 255

# Sections the container itself fills; the rest come from the target's emitter.
MANIFEST, GRAPH, CHIP = "manifest", "graph", "chip"


@dataclass
class Image:
    """A compiled image: its target, the hash of the chip description and named sections.

    ``chip_sha256`` is the hex SHA-256 of the chip description's text ("" for ``cpu``, which
    has no chip).  ``stats`` holds what the compiler measured on this run (pass timings); it is
    not part of the image's bytes."""

    target: str
    chip_sha256: str
    sections: dict[str, bytes]
    filename: str = field(default="<image>", compare=False, repr=False)
    stats: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def manifest(self) -> dict:
        """The JSON ``manifest`` section (empty when the image has none)."""
        if MANIFEST not in self.sections:
            return {}
        try:
            manifest = json.loads(self.sections[MANIFEST].decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as err:
            raise NmcError(f"the manifest section is not valid JSON: {err}", Loc(self.filename)) from None
        from nmc.targets.image_check import check_manifest

        check_manifest(manifest, self.filename)
        return manifest

    @cached_property
    def graph(self):
        """The integer (or, for ``cpu``, float) ``snn`` graph the image was mapped from."""
        from nmc.ir.parser import parse_ir

        if GRAPH not in self.sections:
            raise NmcError("the image carries no graph section", Loc(self.filename),
                           hint="run it with a chip emulator backend instead")
        try:
            text = self.sections[GRAPH].decode("utf-8")
        except UnicodeDecodeError as err:
            raise NmcError(f"the graph section is not UTF-8 text: {err}", Loc(self.filename)) from None
        return parse_ir(text, f"{self.filename}[graph]")

    def chip(self):
        """The :class:`~nmc.targets.chip.Chip` the image was compiled for."""
        from nmc.targets.chip import parse_chip

        if CHIP not in self.sections:
            raise NmcError(f"the image for target '{self.target}' carries no chip description", Loc(self.filename))
        try:
            text = self.sections[CHIP].decode("utf-8")
        except UnicodeDecodeError as err:
            raise NmcError(f"the chip section is not UTF-8 text: {err}", Loc(self.filename)) from None
        return parse_chip(text, f"{self.filename}[chip]")

    def save(self, path: str) -> None:
        """Write the image to ``path`` atomically (whole or not at all)."""
        from nmc.fileio import atomic_write

        atomic_write(path, lambda f: write_image(self, f))


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def _layout(img: Image) -> tuple[bytes, list[tuple[int, bytes]], int]:
    """(header, section table and CRC, zero-padded to the first payload; each section's offset
    and bytes, in name order; the file's length) — the image's bytes without copying its
    sections."""
    target = img.target.encode("utf-8")
    if len(target) > 0xFFFF:
        raise ValueError("target name too long for an image")
    digest = bytes.fromhex(img.chip_sha256) if img.chip_sha256 else bytes(32)
    if len(digest) != 32:
        raise ValueError(f"chip_sha256 must be 64 hex digits, got {img.chip_sha256!r}")
    names = sorted(img.sections)
    encoded = [n.encode("utf-8") for n in names]
    for n in encoded:
        if not 0 < len(n) <= MAX_NAME:
            raise ValueError(f"section name {n!r} must have 1 to {MAX_NAME} bytes")
    table_size = sum(_U16.size + len(n) + _ENTRY.size for n in encoded)
    offset = pos = _align(_HEADER.size + len(target) + table_size + _U32.size)
    entries, placed = [], []
    for name, raw in zip(names, encoded):
        data = img.sections[name]
        entries.append(_U16.pack(len(raw)) + raw + _ENTRY.pack(pos, len(data), zlib.crc32(data)))
        placed.append((pos, data))
        pos = _align(pos + len(data))
    head = _HEADER.pack(MAGIC, FORMAT_VERSION, len(names), pos, digest, len(target)) + target + b"".join(entries)
    head += _U32.pack(zlib.crc32(head))
    return head + bytes(offset - len(head)), placed, pos


def _chunks(img: Image):
    """The image's bytes as a sequence of pieces (its sections not copied)."""
    head, placed, total = _layout(img)
    yield head
    for i, (pos, data) in enumerate(placed):
        yield data
        end = placed[i + 1][0] if i + 1 < len(placed) else total
        yield bytes(end - pos - len(data))


def write_image(img: Image, f) -> None:
    """Write the image's bytes (:func:`encode_image`) to binary file ``f``, section by section."""
    for chunk in _chunks(img):
        f.write(chunk)


def encode_image(img: Image) -> bytes:
    """The image's bytes (deterministic: a function of target, chip hash and sections only)."""
    return b"".join(_chunks(img))


def _canonical(img: Image, data: bytes) -> bool:
    """``encode_image(img) == data`` for an image decoded from ``data`` (every section CRC-checked
    at its table offset), without building the bytes again: the same header and table, zero
    padding between the sections and after the last."""
    try:
        head, placed, total = _layout(img)
    except ValueError:
        return False
    if total != len(data) or data[:len(head)] != head:
        return False
    ends = [pos + len(body) for pos, body in placed]
    starts = [pos for pos, _ in placed[1:]] + [total]
    return all(not any(data[a:b]) for a, b in zip(ends, starts))


def decode_image(data: bytes, filename: str = "<image>") -> Image:
    """Parse and check the bytes of an image (see the module contract)."""
    loc = Loc(filename)
    data = bytes(data)

    def fail(message: str, hint: str | None = None) -> NmcError:
        return NmcError(message, loc, hint=hint)

    if data[:len(MAGIC)] != MAGIC[:len(data)] or not data:
        raise fail("not an nmc image (bad magic: the file does not start with 'NMCIMG')",
                   hint="nmc compile MODEL --target T -o OUT.nmb writes an image")
    if len(data) < _HEADER.size:
        raise fail(f"truncated image: {len(data)} bytes, shorter than the {_HEADER.size}-byte header")
    magic, version, count, total, digest, target_len = _HEADER.unpack_from(data)
    if version != FORMAT_VERSION:
        raise fail(f"unknown image format version {version}; this nmc reads version {FORMAT_VERSION}",
                   hint="recompile the model with this nmc")
    if len(data) < total:
        raise fail(f"truncated image: expected {total} bytes, the file has {len(data)}")
    if len(data) > total:
        raise fail(f"corrupt image: {len(data) - total} bytes after its end (expected {total} bytes, "
                   f"the file has {len(data)})")
    pos = _HEADER.size
    try:
        target = data[pos:pos + target_len].decode("utf-8")
        pos += target_len
        table = []
        for _ in range(count):
            (n,) = _U16.unpack_from(data, pos)
            name = data[pos + 2:pos + 2 + n].decode("utf-8")
            pos += 2 + n
            table.append((name, *_ENTRY.unpack_from(data, pos)))
            pos += _ENTRY.size
        (crc,) = _U32.unpack_from(data, pos)
    except (struct.error, UnicodeDecodeError):
        raise fail("corrupt image: the section table runs past its end or is not readable") from None
    if zlib.crc32(data[:pos]) != crc:
        raise fail("corrupt image: the header or section table fails its CRC32 check")
    sections: dict[str, bytes] = {}
    for name, offset, length, crc in table:
        if name in sections:
            raise fail(f"corrupt image: section '{name}' appears twice")
        if offset < pos or offset + length > total:
            raise fail(f"corrupt image: section '{name}' ({length} bytes at offset {offset}) lies outside the file")
        body = data[offset:offset + length]
        if zlib.crc32(body) != crc:
            raise fail(f"corrupt image: section '{name}' fails its CRC32 check "
                       f"(stored {crc:08x}, computed {zlib.crc32(body):08x})")
        sections[name] = body
    img = Image(target, digest.hex() if any(digest) else "", sections, filename=filename)
    if CHIP in sections and hashlib.sha256(sections[CHIP]).hexdigest() != img.chip_sha256:
        raise fail("corrupt image: the chip description does not match the chip hash in the header")
    if not _canonical(img, data):  # the bytes no CRC covers (padding, section order) must be as nmc writes them
        raise fail("corrupt image: bytes between the sections (padding) or the section order are not as written")
    return img


def read_image(path: str, expect_target: str | None = None) -> Image:
    """The image in ``path``; with ``expect_target``, refuse an image for another target."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise NmcError(f"cannot read image {path}: {err.strerror}") from None
    img = decode_image(data, path)
    img.manifest  # noqa: B018 — its keys and types are checked on every read (issue 22)
    if expect_target is not None and img.target != expect_target:
        raise NmcError(f"the image is for target '{img.target}', asked for '{expect_target}'", Loc(path),
                       hint=f"recompile with --target {expect_target}")
    return img
