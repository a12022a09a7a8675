"""The log store's whole-log reads: search, the outline of steps, the raw text, and line times; the
same answers from live chunks and from the archive, on a 200,000-line log too."""

import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from prebuilds import logstore, services
from prebuilds.models import Prebuild, PrebuildLogArchive, PrebuildLogChunk

pytestmark = pytest.mark.django_db


@pytest.fixture
def prebuild(org):
    return services.prebuild_create(actor=org.member, project=org.project)


def write(prebuild, lines, per_chunk=7):
    seq = logstore.next_seq(prebuild.id)
    for start in range(0, len(lines), per_chunk):
        seq = logstore.append(prebuild.id, seq, lines[start : start + per_chunk])


def reader(prebuild, source):
    """Keyword arguments that read the log as the endpoint would from `source`."""
    if source == "archived":
        logstore.archive(prebuild)
        return {}
    if source == "live":
        return {"live_last": Prebuild.objects.get(pk=prebuild.pk).log_last_seq}
    return {}


LINES = [
    ("clone", "stderr", "Cloning into 'workspace'..."),
    ("onCreateCommand", "stdout", "installing \x1b[32mleft-pad\x1b[0m"),
    ("onCreateCommand", "stdout", "Downloading 10%\rDownloading 100%"),
    ("onCreateCommand:web", "stdout", "web: ERROR could not bind"),
    ("onCreateCommand", "stderr", "npm error code E404"),
    ("onCreateCommand:web", "stdout", "web: retrying"),
    ("updateContentCommand", "stdout", "Error: exit status 3"),
]


@pytest.mark.parametrize("source", ["chunks", "live", "archived"])
def test_search_matches_the_visible_text_case_insensitively_from_any_source(prebuild, source):
    write(prebuild, LINES, per_chunk=3)
    kwargs = reader(prebuild, source)
    result = logstore.search(prebuild, "error", **kwargs)
    assert (result.matches, result.total, result.complete, result.last) == ([4, 5, 7], 3, True, 7)
    # What the panel shows, not the escapes: "left-pad" is green on screen but one word.
    assert logstore.search(prebuild, "installing left-pad", **kwargs).matches == [2]
    # A carriage return overwrote "10%": only what a terminal ends up showing is found.
    assert logstore.search(prebuild, "10%", **kwargs).total == 0
    assert logstore.search(prebuild, "100%", **kwargs).matches == [3]
    # The next batch of a long search: matches after a line, the total still of the whole log.
    assert (logstore.search(prebuild, "error", after=4, limit=1, **kwargs).matches, 3) == ([5], 3)
    assert logstore.search(prebuild, "no such text", **kwargs).matches == []


def test_an_empty_query_is_refused(prebuild):
    with pytest.raises(ValueError):
        logstore.search(prebuild, "")


def test_search_looks_at_no_more_lines_than_its_bound_and_says_so(prebuild, monkeypatch):
    write(prebuild, [("s", "stdout", f"line {i}") for i in range(50)], per_chunk=10)
    monkeypatch.setattr(logstore, "SEARCH_MAX_LINES", 20)
    result = logstore.search(prebuild, "line")
    assert (result.total, result.complete, result.last) == (20, False, 20)


def test_a_live_search_stops_at_the_lines_the_caller_counted(prebuild):
    write(prebuild, [("s", "stdout", f"line {i}") for i in range(10)])
    assert logstore.search(prebuild, "line", live_last=6).matches == [1, 2, 3, 4, 5, 6]


def build_200000_lines(prebuild):
    """200,000 lines in the worker's largest batches (2,000 a chunk), one of them near the start."""
    seq = 1
    for start in range(0, 200_000, 2000):
        batch = [("onCreateCommand", "stdout", f"compiling module {n} of 200000") for n in range(start, start + 2000)]
        if start == 0:
            batch[41] = ("onCreateCommand", "stderr", "warning: deprecated option --legacy-peer-deps")
        seq = logstore.append(prebuild.id, seq, batch)
    return seq - 1


@pytest.mark.parametrize("source", ["live", "archived"])
def test_search_of_200000_lines_finds_the_line_near_the_start_with_a_bounded_cost(prebuild, source):
    assert build_200000_lines(prebuild) == 200_000
    kwargs = reader(prebuild, source)
    started = time.monotonic()
    with CaptureQueriesContext(connection) as queries:
        found = logstore.search(prebuild, "LEGACY-peer", **kwargs)
    elapsed = time.monotonic() - started
    assert (found.matches, found.total, found.complete, found.last) == ([42], 1, True, 200_000)
    # A few rows per round trip from the chunks (100 chunks: 5 fetches), one lookup for an archive
    # (whose lines the process has decompressed once and keeps).
    assert len(queries) <= (100 // logstore._SCAN_BATCH + 2 if source == "live" else 2)
    assert elapsed < 10, f"searching 200,000 lines took {elapsed:.1f} s"

    # A query every line matches: the count is exact, the sequence numbers capped per answer.
    everything = logstore.search(prebuild, "module", **kwargs)
    assert everything.total == 199_999 and len(everything.matches) == logstore.SEARCH_MAX_MATCHES
    assert everything.matches[:3] == [1, 2, 3]
    later = logstore.search(prebuild, "module", after=everything.matches[-1], **kwargs)
    assert later.matches[0] == logstore.SEARCH_MAX_MATCHES + 2  # line 42 is the one that does not match


@pytest.mark.parametrize("source", ["chunks", "live", "archived"])
def test_outline_gives_each_steps_first_and_last_line_in_start_order(prebuild, source):
    write(prebuild, LINES, per_chunk=2)
    steps = logstore.outline(prebuild, **reader(prebuild, source))
    assert [(s.name, s.first, s.last, s.lines) for s in steps] == [
        ("clone", 1, 1, 1),
        ("onCreateCommand", 2, 5, 3),
        ("onCreateCommand:web", 4, 6, 2),  # ran in parallel: its lines interleave with the other's
        ("updateContentCommand", 7, 7, 1),
    ]


@pytest.mark.parametrize("source", ["chunks", "archived"])
def test_raw_text_is_every_line_as_written_in_streamed_pieces(prebuild, source):
    lines = [("s", "stdout", f"line {i} " + "x" * 100) for i in range(2000)] + [("s", "stderr", "\x1b[31mred\x1b[0m")]
    write(prebuild, lines, per_chunk=500)
    reader(prebuild, source)
    pieces = list(logstore.raw_text(prebuild))
    assert len(pieces) > 1  # streamed, not one string of the whole log
    assert "".join(pieces) == "".join(text + "\n" for _, _, text in lines)
    if source == "archived":
        assert not PrebuildLogChunk.objects.filter(prebuild=prebuild).exists()


def test_an_empty_log_has_no_matches_outline_or_text(prebuild):
    assert logstore.search(prebuild, "x").matches == []
    assert logstore.outline(prebuild) == []
    logstore.archive(prebuild)
    assert list(logstore.raw_text(prebuild)) == [] and logstore.outline(prebuild) == []


def test_lines_carry_the_time_they_were_stored_live_and_archived(prebuild):
    write(prebuild, LINES, per_chunk=4)
    chunk_times = [round(c.created_at.timestamp() * 1000) for c in PrebuildLogChunk.objects.order_by("first_seq")]
    live = logstore.read(prebuild).lines
    assert [line.time for line in live] == [chunk_times[0]] * 4 + [chunk_times[1]] * 3
    assert live[0].as_json()["time"] == chunk_times[0]
    logstore.archive(prebuild)
    logstore._archived_lines.cache_clear()
    assert [line.time for line in logstore.read(prebuild).lines] == [line.time for line in live]


def test_an_archive_made_before_lines_had_times_still_reads(prebuild):
    import json

    import zstandard

    data = zstandard.ZstdCompressor().compress(b"\n".join(json.dumps(["s", "stdout", t]).encode() for t in "ab"))
    PrebuildLogArchive.objects.create(prebuild=prebuild, line_count=2, data=data)
    lines = logstore.read(prebuild).lines
    assert [(line.text, line.time) for line in lines] == [("a", None), ("b", None)]
    assert "".join(logstore.raw_text(prebuild)) == "a\nb\n"


def test_visible_text_drops_what_the_panel_does_not_show():
    assert logstore.visible_text("\x1b[1;31mred\x1b[0m and \x1b]0;title\x07plain") == "red and plain"
    assert logstore.visible_text("50%\r100%\r") == "100%"
    assert logstore.visible_text("bell\x07 and tab\tstay") == "bell and tab\tstay"


# --- through the logs endpoint (a logs token, never a session) ----------------------------------------


def get_logs(client, org, prebuild, **params):
    token = services.prebuild_create_logs_token(actor=org.member, prebuild=prebuild)
    return client.get(f"/logs/{prebuild.id}", params, HTTP_AUTHORIZATION=f"Bearer {token}")


def test_the_endpoint_searches_and_outlines_with_the_phase_and_status_version(client, org, prebuild):
    write(prebuild, LINES)
    body = get_logs(client, org, prebuild, q="ERROR").json()
    assert (body["matches"], body["total"], body["complete"], body["last"]) == ([4, 5, 7], 3, True, 7)
    assert (body["phase"], body["statusVersion"], body["more"]) == ("PREBUILD_PHASE_PENDING", 1, True)
    assert get_logs(client, org, prebuild, q="error", after=5).json()["matches"] == [7]
    steps = get_logs(client, org, prebuild, outline=1).json()["steps"]
    assert steps[1] == {"name": "onCreateCommand", "first": 2, "last": 5, "lines": 3}
    lines = get_logs(client, org, prebuild, tail=1).json()
    assert lines["statusVersion"] == 1 and lines["lines"][0]["time"] > 0
    services.prebuild_cancel(actor=org.member, prebuild=prebuild)  # a status write
    assert get_logs(client, org, prebuild, tail=1).json()["statusVersion"] == 2


@pytest.mark.parametrize(
    "params", [{"q": ""}, {"q": "   "}, {"q": "x" * 201}, {"q": "x", "tail": 5}, {"q": "x", "before": 3}]
)
def test_a_bad_search_is_a_400(client, org, prebuild, params):
    response = get_logs(client, org, prebuild, **params)
    assert response.status_code == 400 and response.json()["code"] == "invalid_argument"
