"""Every date format the dialects render or read, each implemented once beside the pattern
that documents it (the response models annotate their fields with these patterns)."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta, tzinfo

from google.protobuf import timestamp_pb2

# Timestamps are rendered for every note of every list: plain datetime arithmetic in C, not
# Timestamp.ToDatetime, and each format's text of a second made once (docs/benchmarks.md,
# "Figures that used to live in comments" and "The gateway's CPU per request").
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_datetime(ts: timestamp_pb2.Timestamp) -> datetime:
    return _EPOCH + timedelta(seconds=ts.seconds, microseconds=ts.nanos // 1000)


# ISO 8601 in UTC with milliseconds and Z (customer notes, ShelfCycle): 2026-05-29T14:35:00.000Z
ISO_MS = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"


def iso_ms(ts: timestamp_pb2.Timestamp) -> str:
    return f"{_utc_second(ts.seconds)}.{ts.nanos // 1_000_000:03d}Z"


@functools.lru_cache(maxsize=65_536)
def _utc_second(seconds: int) -> str:
    return (_EPOCH + timedelta(seconds=seconds)).replace(tzinfo=None).isoformat()


def parse_iso(text: str) -> datetime:
    """An ISO 8601 date-time a client sent (ShelfCycle's happenedAt, If-Match); without an
    offset it is UTC. ValueError when it is none."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def to_millisecond(ts: timestamp_pb2.Timestamp) -> datetime:
    """The moment at iso_ms's precision, to compare with one a client read from it."""
    moment = to_datetime(ts)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


# WordPress's local and GMT dates, no zone designator (WooCommerce): 2026-05-29T14:35:00
WC_DATE = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$"
_WC_DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"


def wc_date(ts: timestamp_pb2.Timestamp, zone: tzinfo | None = None) -> str:
    """The date in the shop's zone (date_created), or in UTC (date_created_gmt)."""
    return _wc_second(ts.seconds, zone)


@functools.lru_cache(maxsize=65_536)
def _wc_second(seconds: int, zone: tzinfo | None) -> str:
    moment = _EPOCH + timedelta(seconds=seconds)
    return (moment.astimezone(zone) if zone else moment).strftime(_WC_DATE_FORMAT)


# Go's time.Time.String() in UTC (NewStore): 2012-10-31 15:50:13.793654 +0000 UTC
GO_TIME = r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d*[1-9])? \+0000 UTC$"


def go_time(ts: timestamp_pb2.Timestamp) -> str:
    text = _go_second(ts.seconds)
    if not ts.nanos:
        return f"{text} +0000 UTC"
    return f"{text}.{f'{ts.nanos:09d}'.rstrip('0')} +0000 UTC"


@functools.lru_cache(maxsize=65_536)
def _go_second(seconds: int) -> str:
    return (_EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%d %H:%M:%S")
