"""Note ids: "note_" + a ULID whose 128 bits are also the note's UUID (NewStore's form)."""

from __future__ import annotations

import uuid

import ulid

NOTE_ID_PREFIX = "note_"
_MS, _RANDOM = 2**48 - 1, 2**80 - 1


def note_uuid(note_id: str) -> str:
    """The UUID form of a note id."""
    return str(ulid.ULID.from_str(note_id.removeprefix(NOTE_ID_PREFIX)).to_uuid())


def note_id_of_uuid(value: str) -> str:
    """The note id of a UUID (ValueError if value is none)."""
    return NOTE_ID_PREFIX + str(ulid.ULID.from_uuid(uuid.UUID(value)))


def note_id_at(ms: int, randomness: int) -> str:
    """The note id of a millisecond time and 80 bits (each cut to its width): ids made so sort
    by time. For ids that must come out the same each time (imports, the bench's data set)."""
    return NOTE_ID_PREFIX + str(ulid.ULID.from_int(((ms & _MS) << 80) | (randomness & _RANDOM)))


# A note id as the service makes it: the prefix and a ULID in Crockford's base32.
NOTE_ID_PATTERN = rf"^{NOTE_ID_PREFIX}[0-9A-HJKMNP-TV-Z]{{26}}$"
# The same note's UUID form, as note_uuid writes it.
NOTE_UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
