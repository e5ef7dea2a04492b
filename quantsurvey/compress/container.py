"""The encoded-model file: one self-describing binary container.

Layout: b"QSDC", a version byte, a little-endian u32 header length, the header (compact JSON:
what every blob is), the blobs back to back, and a CRC-32 of everything before it. A truncated or
damaged file fails the length or CRC check with one clear error.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import Any

from quantsurvey.errors import CheckpointError

MAGIC = b"QSDC"
VERSION = 1


def pack_container(header: dict[str, Any], blobs: dict[str, bytes]) -> bytes:
    """Serialise `header` plus named `blobs`; the header records each blob's offset and size."""
    offsets, payload, pos = {}, [], 0
    for name, blob in blobs.items():
        offsets[name] = [pos, len(blob)]
        payload.append(blob)
        pos += len(blob)
    head = json.dumps({**header, "blobs": offsets}, separators=(",", ":")).encode()
    body = MAGIC + bytes([VERSION]) + struct.pack("<I", len(head)) + head + b"".join(payload)
    return body + struct.pack("<I", zlib.crc32(body))


def unpack_container(data: bytes, source: str = "encoded file"
                     ) -> tuple[dict[str, Any], dict[str, bytes]]:
    def fail(why: str) -> CheckpointError:
        return CheckpointError(f"{source} is not a valid quantsurvey encoded model: {why}. "
                               f"Re-export it from its run (the encode stage).")

    if len(data) < 13 or data[:4] != MAGIC:
        raise fail("it does not start with the QSDC signature")
    if data[4] != VERSION:
        raise fail(f"format version {data[4]}, this code reads version {VERSION}")
    (crc,) = struct.unpack("<I", data[-4:])
    if zlib.crc32(data[:-4]) != crc:
        raise fail("its checksum does not match (truncated or corrupted)")
    (head_len,) = struct.unpack("<I", data[5:9])
    header = json.loads(data[9 : 9 + head_len])
    start = 9 + head_len
    blobs = {name: data[start + off : start + off + size]
             for name, (off, size) in header.pop("blobs").items()}
    return header, blobs


def write_container(path: Path, header: dict[str, Any], blobs: dict[str, bytes]) -> int:
    """Write atomically; returns the file's size in bytes."""
    data = pack_container(header, blobs)
    tmp = Path(path).with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return len(data)


def read_container(path: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"encoded model {path} does not exist.")
    return unpack_container(path.read_bytes(), str(path))
