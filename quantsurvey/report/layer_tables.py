"""The per-layer records in a run summary's `compression` section, as tables (columns, rows):
what a W&B Table shows per run (kept fractions of pruning, the encoded file's per-layer bits and
bytes, the fixed-point steps of every layer).

A per-layer record is a mapping whose values are all numbers (one column, `value`) or all
mappings (one row each, nested keys joined with '.'); a mapping that mixes the two (e.g.
`encoded`: its size, and its `layers`) is searched further. Lists and strings are cells."""

from __future__ import annotations

from typing import Any

Scalar = int | float | str | bool | None


def _flat(row: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value if isinstance(value, Scalar) else str(value)
    return out


def layer_tables(compression: dict[str, Any], prefix: str = ""
                 ) -> dict[str, tuple[list[str], list[list[Any]]]]:
    """{dotted path: (columns, rows)}; the first column is the layer (the record's key)."""
    tables: dict[str, tuple[list[str], list[list[Any]]]] = {}
    for key, value in compression.items():
        if not isinstance(value, dict) or not value:
            continue
        path = f"{prefix}{key}"
        values = list(value.values())
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            tables[path] = (["layer", "value"], [[k, v] for k, v in value.items()])
        elif all(isinstance(v, dict) for v in values):
            rows = {k: _flat(v) for k, v in value.items()}
            columns: list[str] = []
            for row in rows.values():
                columns += [c for c in row if c not in columns]
            tables[path] = (["layer", *columns],
                            [[k, *(row.get(c) for c in columns)] for k, row in rows.items()])
        else:
            tables.update(layer_tables(value, f"{path}."))
    return tables
