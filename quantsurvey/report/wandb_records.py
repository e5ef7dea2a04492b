"""Read the records of an offline W&B run file (`run-<id>.wandb`) without a W&B account.

The file is a 7-byte header (":W&B", magic, version) followed by records in LevelDB's log format:
32 KiB blocks of chunks, each with a 7-byte header (CRC, little-endian length, type), where type
1 is a whole record and 2/3/4 the first/middle/last piece of one. Each record is a protobuf
`wandb_internal_pb2.Record`.
"""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

_BLOCK = 32768


def read_records(path: Path) -> list:
    from wandb.proto import wandb_internal_pb2 as pb  # only where wandb is installed

    data = Path(path).read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path} is not a W&B run file")
    pos, chunks, records = 7, [], []
    while pos + 7 <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < 7:
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunks.append(data[pos + 7 : pos + 7 + length])
        pos += 7 + length
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(b"".join(chunks))
            records.append(record)
            chunks = []
    return records


def read_finished_records(path: Path, timeout_s: float = 60.0) -> list:
    """The records of a run file once W&B's writer has written the run's `exit` record (it
    writes the file from another process, and may still be flushing when `wandb.finish()`
    returns); TimeoutError naming the file if that does not happen within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        records = read_records(path)
        if any(r.WhichOneof("record_type") == "exit" for r in records):
            return records
        if time.monotonic() > deadline:
            kinds = sorted({r.WhichOneof("record_type") for r in records})
            raise TimeoutError(f"{path}: no exit record after {timeout_s} s (records: {kinds})")
        time.sleep(0.2)


def history(records: list) -> list[dict]:
    rows = []
    for r in records:
        if r.WhichOneof("record_type") == "history":
            rows.append({(i.key or "/".join(i.nested_key)): json.loads(i.value_json)
                         for i in r.history.item})
    return rows


def run_info(records: list) -> dict:
    for r in records:
        if r.WhichOneof("record_type") == "run":
            config = {(u.key or "/".join(u.nested_key)): json.loads(u.value_json)
                      for u in r.run.config.update}
            return {"id": r.run.run_id, "group": r.run.run_group, "job_type": r.run.job_type,
                    "tags": list(r.run.tags), "config": config}
    raise ValueError("no run record")


def run_summary(records: list) -> dict:
    """The run summary as W&B's last summary record holds it (key → value)."""
    out: dict = {}
    for r in records:
        if r.WhichOneof("record_type") == "summary":
            out.update({(u.key or "/".join(u.nested_key)): json.loads(u.value_json)
                        for u in r.summary.update})
    return out
