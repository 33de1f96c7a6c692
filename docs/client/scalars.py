"""The custom scalars of schema.graphql in a client generated with ariadne-codegen.

tests/it/generated_client.rs copies this file into the generated package (`files_to_include`)
and maps each custom scalar the schema declares to these functions: `DateTime` to a
timezone-aware `datetime` (RFC 3339 on the wire), `Int64` to `int` (a decimal string on the
wire, so no 64-bit value passes through a 32-bit GraphQL `Int`; a number is read too).
`Upload` is ariadne-codegen's own `Upload`, sent as a GraphQL multipart request.
"""

from datetime import datetime, timezone
from typing import Union


def parse_datetime(value: str) -> datetime:
    """Reads an RFC 3339 instant such as `2029-01-01T00:00:00Z`."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def serialize_datetime(value: datetime) -> str:
    """Writes an instant in UTC with a `Z`; a naive datetime names no instant and is refused."""
    if value.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone, so it names no instant")
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def parse_int64(value: Union[str, int]) -> int:
    """Reads a 64-bit value: a decimal string (what the schema sends) or a number."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f"{value!r} is not an Int64")
    return int(value)


def serialize_int64(value: int) -> str:
    """Writes a 64-bit value as the decimal string the schema asks for."""
    return str(int(value))
