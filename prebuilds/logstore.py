"""The prebuild log store, in the database so that the worker and the web server can live on
different machines.

While a prebuild runs, its worker appends lines in batches (one PrebuildLogChunk row per flush);
every line gets a sequence number, 1, 2, 3, ... in the order written. Once the prebuild is
terminal the chunks are packed into one zstd-compressed archive row. Readers ask for lines after
a sequence number, before one, or the last N, and get the same answer from chunks or archive.

A line's time is when it was stored: its chunk's (the worker flushes every quarter of a second, so
it is within that of the moment the line was written), kept per line in the archive. Besides
reading pages there are three whole-log reads, each a single pass with a bounded cost: search
(matching lines, at most SEARCH_MAX_MATCHES of them returned, SEARCH_MAX_LINES looked at), the
outline (where each step's lines start and end) and the raw text for a download (streamed).
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import zstandard
from django.db import transaction
from django.db.models import Max, Min

from prebuilds.models import Prebuild, PrebuildLogArchive, PrebuildLogChunk

MAX_LINE_CHARS = 16 * 1024  # a runaway line is cut, not allowed to bloat a chunk
MAX_READ_LINES = 5000
# Search: the longest query, the most matching sequence numbers one answer carries (the count goes
# on), and the most lines one search looks at (some 20 times the longest log seen: a bound, not a
# limit anyone should meet).
SEARCH_MAX_QUERY = 200
SEARCH_MAX_MATCHES = 5000
SEARCH_MAX_LINES = 5_000_000
# Chunk rows fetched per round trip by the whole-log reads (up to 2,000 lines each).
_SCAN_BATCH = 20


@dataclass(frozen=True)
class LogLine:
    seq: int
    step: str
    stream: str
    text: str
    time: int | None = None  # when it was stored, epoch milliseconds (None in archives made before)

    def as_json(self) -> dict:
        return {"seq": self.seq, "step": self.step, "stream": self.stream, "text": self.text, "time": self.time}


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
        stored = _millis(chunk.created_at)
        for offset, (step, stream, text) in enumerate(chunk.lines):
            yield LogLine(chunk.first_seq + offset, step, stream, text, stored)


def _millis(moment) -> int | None:
    return round(moment.timestamp() * 1000) if moment is not None else None


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
            # [step, stream, text, stored]: the chunk's time goes with each of its lines (the same
            # number over and over, which the compression all but removes).
            stored = _millis(chunk.created_at)
            lines.extend(json.dumps([*line, stored], ensure_ascii=False) for line in chunk.lines)
        data = compressor.compress("\n".join(lines).encode()) if lines else b""
        record = PrebuildLogArchive.objects.create(prebuild=prebuild, line_count=len(lines), data=data)
        PrebuildLogChunk.objects.filter(prebuild=prebuild).delete()
    return record


# --- whole-log reads ---------------------------------------------------------------------------------

# What the log panel leaves out of a line when it shows it (static/js/logs.js does the same): every
# escape sequence, control characters, and whatever a carriage return wrote over.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]?")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1a\x1c-\x1f\x7f]")


def visible_text(text: str) -> str:
    """A line as the panel shows it: what a terminal would show after its last carriage return,
    without escape sequences (colours, cursor moves) and control characters."""
    if "\r" in text:
        parts = [part for part in text.split("\r") if part not in ("", "\n")]
        text = parts[-1] if parts else ""
    if "\x1b" in text:
        text = _ESCAPES.sub("", text)
    return _CONTROL.sub("", text) if _CONTROL.search(text) else text


@dataclass(frozen=True)
class SearchResult:
    matches: list[int]  # sequence numbers of matching lines after `after`, oldest first, at most `limit`
    total: int  # every matching line of the log (those before `after` too)
    complete: bool  # False when the log was longer than SEARCH_MAX_LINES: only its start was searched
    last: int | None  # the last line searched


def search(
    prebuild, query: str, *, after: int = 0, limit: int = SEARCH_MAX_MATCHES, live_last: int | None = None
) -> SearchResult:
    """The lines whose visible text contains `query` (case-insensitive), in one pass over the whole
    log: an archive from its cached lines, chunks a few rows per round trip (memory stays bounded).
    `after` skips matches up to that sequence number (the next batch of a search with more matches
    than one answer carries); `live_last` as for read()."""
    needle = query.casefold()
    if not needle:
        raise ValueError("the query is empty")
    limit = max(1, min(limit, SEARCH_MAX_MATCHES))
    matches: list[int] = []
    total = 0
    last = None
    for scanned, line in enumerate(_all_lines(prebuild, live_last)):
        if scanned >= SEARCH_MAX_LINES:
            return SearchResult(matches, total, False, last)
        last = line.seq
        text = line.text
        if needle in (visible_text(text) if ("\x1b" in text or "\r" in text) else text).casefold():
            total += 1
            if line.seq > after and len(matches) < limit:
                matches.append(line.seq)
    return SearchResult(matches, total, True, last)


@dataclass(frozen=True)
class StepLines:
    name: str
    first: int  # its first line
    last: int  # its last line (steps that run in parallel interleave: lines of others may lie between)
    lines: int


def outline(prebuild, *, live_last: int | None = None) -> list[StepLines]:
    """Each step's first and last line and its number of lines, in the order the steps started:
    what the timeline's step names and the failure banner jump to."""
    found: dict[str, list[int]] = {}
    for line in _all_lines(prebuild, live_last):
        entry = found.get(line.step)
        if entry is None:
            found[line.step] = [line.seq, line.seq, 1]
        else:
            entry[1] = line.seq
            entry[2] += 1
    return [StepLines(name, first, last, count) for name, (first, last, count) in found.items()]


def raw_text(prebuild) -> Iterator[str]:
    """The whole log as text, one line per line as written (escapes and all), in pieces of about
    64 KiB: what the raw download streams. An archive is decompressed as a stream; chunks are read
    a few rows at a time."""
    piece: list[str] = []
    size = 0
    for line in _all_lines(prebuild, None, cache=False):
        piece.append(line.text)
        size += len(line.text) + 1
        if size >= 65536:
            yield "\n".join(piece) + "\n"
            piece, size = [], 0
    if piece:
        yield "\n".join(piece) + "\n"


def _all_lines(prebuild, live_last: int | None, *, cache: bool = True) -> Iterator[LogLine]:
    """Every line, oldest first, from the archive or the chunks. A log archived while its chunks are
    read goes on from the archive where the chunks stopped (archive() deletes them as it packs).
    `cache`: read an archive through the per-process cache of decompressed archives (a search then
    costs no decompression); without it the archive is decompressed as a stream, line by line."""
    prebuild_id = getattr(prebuild, "pk", prebuild)
    seen = 0
    if live_last is None:
        archived = _archive_lines(prebuild_id, cache=cache)
        if archived is not None:
            yield from archived
            return
    rows = (
        PrebuildLogChunk.objects.filter(prebuild_id=prebuild_id)
        .order_by("first_seq")
        .only("first_seq", "lines", "created_at")
    )
    if live_last is not None:
        rows = rows.filter(first_seq__lte=live_last)
    for line in _expand(rows.iterator(chunk_size=_SCAN_BATCH)):
        if live_last is not None and line.seq > live_last:
            return
        seen = line.seq
        yield line
    if live_last is None:
        archived = _archive_lines(prebuild_id, cache=cache)
        if archived is not None:
            yield from (line for line in archived if line.seq > seen)


def _archive_lines(prebuild_id, *, cache: bool) -> Iterator[LogLine] | None:
    archive = PrebuildLogArchive.objects.filter(prebuild_id=prebuild_id).only("prebuild_id", "line_count").first()
    if archive is None:
        return None
    if cache:
        return iter(_archived_lines(str(prebuild_id), archive.line_count))
    return _stream_archive(prebuild_id)


def _stream_archive(prebuild_id) -> Iterator[LogLine]:
    data = PrebuildLogArchive.objects.filter(prebuild_id=prebuild_id).values_list("data", flat=True).first()
    if not data:
        return
    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(bytes(data)))
    # Lines are split on b"\n" only (as in _archived_lines); BufferedReader's readline does that.
    for seq, raw in enumerate(io.BufferedReader(reader, buffer_size=1 << 16), start=1):
        yield LogLine(seq, *json.loads(raw))


def delete(prebuild: Prebuild) -> None:
    PrebuildLogChunk.objects.filter(prebuild=prebuild).delete()
    PrebuildLogArchive.objects.filter(prebuild=prebuild).delete()
