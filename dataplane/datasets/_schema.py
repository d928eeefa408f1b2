"""Dataset schemas: how a version records its Arrow schema, and how two schemas compare.

The schema travels in the manifest (``extra["schema"]``) as the base64 of the Arrow IPC
serialization, so it round-trips exactly (types, nullability, field and schema metadata
such as pandas' index information). Comparisons look only at column names and types:
nullability, metadata and column order are not part of a schema requirement.
"""

from __future__ import annotations

import base64

import pyarrow as pa

from ..errors import SchemaMismatchError

__all__ = ["check_schema", "deserialize_schema", "schema_differences", "serialize_schema"]


def serialize_schema(schema: pa.Schema) -> str:
    """The schema as text that :func:`deserialize_schema` turns back into an equal schema."""
    return base64.b64encode(schema.serialize().to_pybytes()).decode("ascii")


def deserialize_schema(text: str) -> pa.Schema:
    schema: pa.Schema = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(text)))
    return schema


def schema_differences(actual: pa.Schema, required: pa.Schema) -> list[str]:
    """Human-readable differences, by column: missing, extra, and of a different type."""
    have = {field.name: field.type for field in actual}
    want = {field.name: field.type for field in required}
    missing = [f"{name} ({kind})" for name, kind in want.items() if name not in have]
    extra = [f"{name} ({kind})" for name, kind in have.items() if name not in want]
    changed = [f"{name} (required {kind}, got {have[name]})"
               for name, kind in want.items() if name in have and have[name] != kind]
    problems = []
    for label, columns in (("missing columns", missing), ("extra columns", extra),
                           ("columns of a different type", changed)):
        if columns:
            problems.append(f"{label}: {', '.join(columns)}")
    if not problems and len(set(actual.names)) != len(actual.names):
        problems.append(f"duplicate column names in {actual.names}")
    return problems


def check_schema(actual: pa.Schema, required: pa.Schema, what: str) -> None:
    """Raise :class:`SchemaMismatchError` naming the columns unless the schemas agree."""
    problems = schema_differences(actual, required)
    if problems:
        raise SchemaMismatchError(f"the data does not match {what}: {'; '.join(problems)}")
