"""The encoded-model file: one self-describing binary container.

Layout: b"QSDC", a version byte, a little-endian u32 header length, the header (compact JSON
naming every blob and its size, zlib-deflated: it counts towards the stored size, Han 2016 §5),
the blobs back to back in header order, and a CRC-32 of everything before it. A truncated or
damaged file fails the length or CRC check with one clear error. Version 1 files (plain JSON
header with blob offsets) still load.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import Any

from quantsurvey.errors import CheckpointError

MAGIC = b"QSDC"
VERSION = 2


def pack_container(header: dict[str, Any], blobs: dict[str, bytes]) -> bytes:
    """Serialise `header` plus named `blobs`; the header records each blob's offset and size."""
    sizes = [[name, len(blob)] for name, blob in blobs.items()]
    head = zlib.compress(json.dumps({**header, "blobs": sizes}, separators=(",", ":")).encode(), 9)
    body = MAGIC + bytes([VERSION]) + struct.pack("<I", len(head)) + head + b"".join(blobs.values())
    return body + struct.pack("<I", zlib.crc32(body))


def unpack_container(data: bytes, source: str = "encoded file"
                     ) -> tuple[dict[str, Any], dict[str, bytes]]:
    def fail(why: str) -> CheckpointError:
        return CheckpointError(f"{source} is not a valid quantsurvey encoded model: {why}. "
                               f"Re-export it from its run (the encode stage).")

    if data[:4] != MAGIC:
        raise fail("it does not start with the QSDC signature")
    if len(data) < 13:  # signature, version, header length, checksum
        raise fail(f"it holds {len(data)} bytes, too few for any container (truncated)")
    if data[4] not in (1, VERSION):
        raise fail(f"format version {data[4]}, this code reads versions 1 and {VERSION}")
    (crc,) = struct.unpack("<I", data[-4:])
    if zlib.crc32(data[:-4]) != crc:
        raise fail("its checksum does not match (truncated or corrupted)")
    (head_len,) = struct.unpack("<I", data[5:9])
    head, start = data[9 : 9 + head_len], 9 + head_len
    try:
        if data[4] == 1:
            header = json.loads(head)
            return header, {name: data[start + off : start + off + size]
                            for name, (off, size) in header.pop("blobs").items()}
        header = json.loads(zlib.decompress(head))
        blobs = {}
        for name, size in header.pop("blobs"):
            blobs[name], start = data[start : start + size], start + size
    except (zlib.error, ValueError, KeyError, TypeError, AttributeError) as err:
        raise fail(f"its header cannot be read ({type(err).__name__}), although its checksum "
                   f"matches: it was not written by this code") from None
    return header, blobs


def write_container(path: Path, header: dict[str, Any], blobs: dict[str, bytes]) -> int:
    """Write atomically (a temporary file renamed into place; removed if the write fails);
    returns the file's size in bytes."""
    data = pack_container(header, blobs)
    tmp = Path(path).with_suffix(".tmp")
    try:
        tmp.write_bytes(data)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return len(data)


def read_container(path: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"encoded model {path} does not exist.")
    return unpack_container(path.read_bytes(), str(path))
