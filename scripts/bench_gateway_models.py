"""Parse+render cost of the gateway's hot path, three ways: today's dict code (json + hand
checks, JSONResponse), msgspec Structs and pydantic v2 models. Customer notes dialect: decode
a typical create body; render a 50-note list page from notes.v1 messages.

    .venv/bin/pip install pydantic   # the comparison only: the gateway does not use it
    flock /work/wt/bench.lock .venv/bin/python scripts/bench_gateway_models.py

Prints the median of 5 timeit repeats per row, in microseconds per operation."""

from __future__ import annotations

import json
import statistics
import timeit
from typing import Annotated, Any

import msgspec
import pydantic
from notes.v1 import notes_pb2 as pb

from server.gateway import customer_notes
from server.gateway.timefmt import iso_ms

CREATE = json.dumps(
    {
        "body": "Customer reported issue with product quality. Offered replacement.",
        "is_internal": True,
        "metadata": {"category": "support", "priority": "medium", "ticket_id": "TKT-12345"},
    }
).encode()


def _notes(n: int = 50) -> list[pb.Note]:
    out = []
    for i in range(n):
        note = pb.Note(
            id=f"note_01J{i:023d}",
            subject=pb.SubjectRef(type=pb.SUBJECT_TYPE_CUSTOMER, id="cus_01ABC"),
            body="Customer reported issue with product quality. Offered replacement. " * 2,
            visibility=pb.VISIBILITY_INTERNAL,
            author=pb.Author(id="user_1"),
        )
        note.create_time.FromSeconds(1_780_000_000 + i)
        note.update_time.FromSeconds(1_780_000_000 + i)
        if i % 5 == 0:
            note.metadata.update({"category": "support", "ticket_id": f"TKT-{i}"})
        out.append(note)
    return out


NOTES = _notes()
BODY_MAX = 5000


# --- msgspec ---------------------------------------------------------------------------------
class MCreate(msgspec.Struct, forbid_unknown_fields=True):
    body: Annotated[str, msgspec.Meta(min_length=1, max_length=BODY_MAX)]
    is_internal: bool | None = None
    metadata: dict[str, Any] | None = None


class MNote(msgspec.Struct):
    id: str
    customer_id: str
    body: str
    is_internal: bool
    author_id: str
    metadata: dict[str, Any]
    created_at: str
    updated_at: str


class MList(msgspec.Struct):
    notes: list[MNote]
    count: int
    offset: int
    limit: int


_m_decoder = msgspec.json.Decoder(MCreate)
_m_encoder = msgspec.json.Encoder()


def m_note(note: pb.Note) -> MNote:
    return MNote(
        note.id,
        note.subject.id,
        note.body,
        note.visibility != pb.VISIBILITY_CUSTOMER,
        note.author.id,
        customer_notes._metadata(note),
        iso_ms(note.create_time),
        iso_ms(note.update_time),
    )


# --- pydantic --------------------------------------------------------------------------------
class PCreate(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", strict=True)
    body: Annotated[str, pydantic.Field(min_length=1, max_length=BODY_MAX)]
    is_internal: bool | None = None
    metadata: dict[str, Any] | None = None


class PNote(pydantic.BaseModel):
    id: str
    customer_id: str
    body: str
    is_internal: bool
    author_id: str
    metadata: dict[str, Any]
    created_at: str
    updated_at: str


class PList(pydantic.BaseModel):
    notes: list[PNote]
    count: int
    offset: int
    limit: int


def p_note(note: pb.Note) -> PNote:
    return PNote.model_construct(
        id=note.id,
        customer_id=note.subject.id,
        body=note.body,
        is_internal=note.visibility != pb.VISIBILITY_CUSTOMER,
        author_id=note.author.id,
        metadata=customer_notes._metadata(note),
        created_at=iso_ms(note.create_time),
        updated_at=iso_ms(note.update_time),
    )


# --- the three ways ----------------------------------------------------------------------------
def dict_parse() -> None:
    from server.gateway.bodies import parse_json

    customer_notes_parse(parse_json(CREATE))


def customer_notes_parse(body: dict) -> None:
    errors = [n for n in body if n not in ("body", "is_internal", "metadata")]
    text = body.get("body")
    assert not errors and isinstance(text, str) and 1 <= len(text) <= BODY_MAX


def dict_render() -> bytes:
    page = {
        "notes": [
            {
                "id": n.id,
                "customer_id": n.subject.id,
                "body": n.body,
                "is_internal": n.visibility != pb.VISIBILITY_CUSTOMER,
                "author_id": n.author.id,
                "metadata": customer_notes._metadata(n),
                "created_at": iso_ms(n.create_time),
                "updated_at": iso_ms(n.update_time),
            }
            for n in NOTES
        ],
        "count": 50,
        "offset": 0,
        "limit": 50,
    }
    return json.dumps(page, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def msgspec_parse() -> None:
    _m_decoder.decode(CREATE)


def msgspec_render() -> bytes:
    return _m_encoder.encode(MList([m_note(n) for n in NOTES], 50, 0, 50))


def pydantic_parse() -> None:
    PCreate.model_validate_json(CREATE)


def pydantic_render() -> bytes:
    return (
        PList.model_construct(notes=[p_note(n) for n in NOTES], count=50, offset=0, limit=50)
        .model_dump_json()
        .encode()
    )


def main() -> None:
    assert dict_render() == msgspec_render() == pydantic_render()
    for name in ("dict", "msgspec", "pydantic"):
        for step, number in (("parse", 20_000), ("render", 500)):
            fn = globals()[f"{name}_{step}"]
            runs = timeit.repeat(fn, number=number, repeat=5)
            print(f"{name:9} {step:7} {statistics.median(runs) / number * 1e6:8.1f} µs")


if __name__ == "__main__":
    main()
