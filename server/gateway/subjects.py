"""Subject types between the domain's names and notes.v1's enum, spelled once (the domain's)."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta
from notes.v1 import notes_pb2 as pb

from ..domain.model import SubjectType
from ..domain.validation import ID_MAX

# "customer" -> pb.SUBJECT_TYPE_CUSTOMER, for every type the domain knows.
SUBJECT_TYPES: dict[str, int] = {
    t.value: pb.SubjectType.Value(f"SUBJECT_TYPE_{t.name}") for t in SubjectType
}
SUBJECT_TYPE_NAMES: dict[int, str] = {v: k for k, v in SUBJECT_TYPES.items()}


def types(*names: SubjectType) -> dict[str, int]:
    """A dialect's subset, in the order given: name -> notes.v1 value."""
    return {t.value: SUBJECT_TYPES[t.value] for t in names}


# A record id in a path, as the service accepts it (domain.validation.check_id): 1..ID_MAX
# characters without surrounding whitespace (its other rule, printable characters only, is no
# portable regex), and no "/", which a path segment cannot hold.
ID_PATTERN = r"^[^\s/]([^/]*[^\s/])?$"
SubjectId = Annotated[str, Meta(min_length=1, max_length=ID_MAX, pattern=ID_PATTERN)]
