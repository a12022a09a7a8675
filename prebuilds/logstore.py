"""The prebuild log store, in the database so that the worker and the web server can live on
different machines.

While a prebuild runs, its worker appends lines in batches (one PrebuildLogChunk row per flush);
every line gets a sequence number, 1, 2, 3, ... in the order written. Once the prebuild is
terminal the chunks are packed into one zstd-compressed archive row. Readers ask for lines after
a sequence number, before one, or the last N, and get the same answer from chunks or archive.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

import zstandard
from django.db import transaction
from django.db.models import Max, Min

from prebuilds.models import Prebuild, PrebuildLogArchive, PrebuildLogChunk

MAX_LINE_CHARS = 16 * 1024  # a runaway line is cut, not allowed to bloat a chunk
MAX_READ_LINES = 5000


@dataclass(frozen=True)
class LogLine:
    seq: int
    step: str
    stream: str
    text: str

    def as_json(self) -> dict:
        return {"seq": self.seq, "step": self.step, "stream": self.stream, "text": self.text}


@dataclass(frozen=True)
class LogPage:
    lines: list[LogLine]
    first: int | None  # smallest sequence number stored
    last: int | None  # largest sequence number stored


def append(prebuild_id, first_seq: int, lines: list[tuple[str, str, str]]) -> int:
    """Store `lines` as sequence numbers first_seq.. and return the next free number. The single
    writer of a prebuild (its worker) keeps the counter, so no read is needed per flush."""
    if not lines:
        return first_seq
    packed = [[step, stream, text[:MAX_LINE_CHARS]] for step, stream, text in lines]
    last_seq = first_seq + len(packed) - 1
    with transaction.atomic():
        PrebuildLogChunk.objects.create(prebuild_id=prebuild_id, first_seq=first_seq, last_seq=last_seq, lines=packed)
        # A column update only: it leaves status_version, and so every status write, alone.
        Prebuild.objects.filter(pk=prebuild_id).update(log_last_seq=last_seq)
    return last_seq + 1


def next_seq(prebuild_id) -> int:
    """The next free sequence number (used once when a writer starts)."""
    last = PrebuildLogChunk.objects.filter(prebuild_id=prebuild_id).aggregate(m=Max("last_seq"))["m"]
    return (last or 0) + 1


def read(
    prebuild,
    *,
    after: int | None = None,
    before: int | None = None,
    tail: int | None = None,
    limit: int = 1000,
    live_last: int | None = None,
) -> LogPage:
    """Lines after `after` (oldest first), or before `before`, or the last `tail` lines, of a
    prebuild (or prebuild id).

    `live_last`: the caller has just read the prebuild's phase as one before the end, and its
    log_last_seq with it. Its lines are then in chunks only (an archive is made once it is
    terminal), numbered 1..live_last, so neither the archive lookup nor the bounds query is needed,
    and a panel asking "anything after N?" when there is nothing costs no query at all."""
    prebuild_id = getattr(prebuild, "pk", prebuild)
    limit = max(1, min(limit, MAX_READ_LINES))
    if live_last is not None:
        bounds = {"first": 1 if live_last else None, "last": live_last or None}
        return _read_chunks(prebuild_id, after, before, tail, limit, bounds)
    page = _read_archive(prebuild_id, after, before, tail, limit)
    if page is not None:
        return page
    page = _read_chunks(prebuild_id, after, before, tail, limit)
    if not page.lines:
        # Archived meanwhile: archive() packs and deletes the chunks in one transaction, but this
        # reader's archive lookup, bounds and rows are separate statements, and the archive may
        # commit between any two of them (then the chunks read as empty or as bounds without rows).
        page = _read_archive(prebuild_id, after, before, tail, limit) or page
    return page


def _read_archive(prebuild_id, after, before, tail, limit) -> LogPage | None:
    archive = PrebuildLogArchive.objects.filter(prebuild_id=prebuild_id).only("prebuild_id", "line_count").first()
    if archive is None:
        return None
    return _slice(_archived_lines(str(prebuild_id), archive.line_count), after, before, tail, limit)


def _slice(lines: tuple[LogLine, ...], after, before, tail, limit) -> LogPage:
    first = lines[0].seq if lines else None
    last = lines[-1].seq if lines else None
    # Archived lines are numbered 1..n without gaps, so a sequence number is an index.
    if tail is not None:
        selected = lines[max(0, len(lines) - min(tail, limit)) :]
    elif before is not None:
        end = max(0, min(before - 1, len(lines)))
        selected = lines[max(0, end - limit) : end]
    else:
        start = max(0, after or 0)
        selected = lines[start : start + limit]
    return LogPage(lines=list(selected), first=first, last=last)


def _read_chunks(prebuild_id, after, before, tail, limit, bounds: dict | None = None) -> LogPage:
    chunks = PrebuildLogChunk.objects.filter(prebuild_id=prebuild_id)
    if bounds is None:
        bounds = chunks.aggregate(first=Min("first_seq"), last=Max("last_seq"))
    if bounds["last"] is None:
        return LogPage(lines=[], first=None, last=None)
    if tail is not None:
        before = bounds["last"] + 1
        limit = min(tail, limit)
    if before is not None:
        low = before - limit
        rows = chunks.filter(first_seq__lt=before, last_seq__gte=low).order_by("first_seq")
        lines = [line for line in _expand(rows) if low <= line.seq < before]
    elif (after or 0) >= bounds["last"]:
        lines = []  # nothing new: what a polling panel hears most
    else:
        after = after or 0
        # The writer numbers lines without gaps, so the lines wanted lie in the chunks overlapping
        # (after, after + limit]: one plain query however long the log (a live panel asks twice a
        # second; a server-side cursor cost several round trips per ask).
        rows = chunks.filter(last_seq__gt=after, first_seq__lte=after + limit).order_by("first_seq")
        # (Lines written since the caller read live_last wait for the next ask: the page stays whole.)
        lines = [line for line in _expand(rows) if after < line.seq <= bounds["last"]][:limit]
        if not lines and bounds["last"] > after:
            # A gap (lines never stored): go on from the next chunk there is.
            lines = list(_expand(chunks.filter(last_seq__gt=after).order_by("first_seq")[:1]))[:limit]
    return LogPage(lines=lines, first=bounds["first"], last=bounds["last"])


def _expand(rows):
    for chunk in rows:
        for offset, (step, stream, text) in enumerate(chunk.lines):
            yield LogLine(chunk.first_seq + offset, step, stream, text)


@lru_cache(maxsize=8)
def _archived_lines(prebuild_id: str, line_count: int) -> tuple[LogLine, ...]:
    """Decompressed once per process and kept for a few prebuilds: viewers page through the same
    archive many times. (line_count is part of the key so a re-archive cannot serve stale data.)"""
    data = bytes(PrebuildLogArchive.objects.values_list("data", flat=True).get(prebuild_id=prebuild_id))
    if not data:
        return ()
    raw = zstandard.ZstdDecompressor().decompress(data)
    # Split on b"\n" only: JSON escapes it inside a line, but str.splitlines() would also split on
    # characters such as U+2028 that may appear in log text.
    return tuple(LogLine(seq, *json.loads(text)) for seq, text in enumerate(raw.split(b"\n"), start=1))


def archive(prebuild: Prebuild) -> PrebuildLogArchive | None:
    """Pack a terminal prebuild's chunks into one compressed archive (idempotent)."""
    with transaction.atomic():
        existing = PrebuildLogArchive.objects.filter(prebuild=prebuild).first()
        if existing is not None:
            return existing
        compressor = zstandard.ZstdCompressor(level=6)
        lines = []
        for chunk in PrebuildLogChunk.objects.filter(prebuild=prebuild).order_by("first_seq").iterator(chunk_size=50):
            lines.extend(json.dumps(line, ensure_ascii=False) for line in chunk.lines)
        data = compressor.compress("\n".join(lines).encode()) if lines else b""
        record = PrebuildLogArchive.objects.create(prebuild=prebuild, line_count=len(lines), data=data)
        PrebuildLogChunk.objects.filter(prebuild=prebuild).delete()
    return record


def delete(prebuild: Prebuild) -> None:
    PrebuildLogChunk.objects.filter(prebuild=prebuild).delete()
    PrebuildLogArchive.objects.filter(prebuild=prebuild).delete()
