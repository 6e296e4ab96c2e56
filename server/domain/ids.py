"""Note ids: "note_" + a ULID whose 128 bits are also the note's UUID (NewStore's form)."""

from __future__ import annotations

import uuid

import ulid

NOTE_ID_PREFIX = "note_"
_MS, _RANDOM = 2**48 - 1, 2**80 - 1


# Crockford's base32 digits as int()'s: a ULID's text read in C (python-ulid decodes it a
# character at a time in Python, and a NewStore list does it for every note).
_CROCKFORD = bytes.maketrans(
    b"0123456789ABCDEFGHJKMNPQRSTVWXYZ", b"0123456789abcdefghijklmnopqrstuv"
)


def note_uuid(note_id: str) -> str:
    """The UUID form of a note id (as the service makes them: NOTE_ID_PATTERN)."""
    value = int(note_id.removeprefix(NOTE_ID_PREFIX).encode().translate(_CROCKFORD), 32)
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


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
