"""Request bodies whatever their framing: a WSGI middleware in front of Django.

Django reads a body only as far as CONTENT_LENGTH says, and reads nothing when there is none, which
is how a body sent with `Transfer-Encoding: chunked` arrives: a chunked ListPrebuilds was an empty
request (every prebuild listed), a chunked JSON body failed to parse, a chunked REST body was `{}`.
Any HTTP client may send one. So such a body is read here, whole, and handed on with its length;
Django, DRF and the Connect application then read it as any other, under the same limits.

Only where the server says the input ends (`wsgi.input_terminated`, as gunicorn sets it once it has
de-chunked the stream): reading to the end of a raw socket would wait for ever. At most
DATA_UPLOAD_MAX_MEMORY_SIZE bytes are kept, Django's cap on a body with a length; a longer body is
handed on announced one byte longer than that, so Django refuses it as too large (RequestDataTooBig:
Connect's resource_exhausted, REST's 400) without anything reading the rest.
"""

from __future__ import annotations

import io

from django.conf import settings

READ_PIECE = 64 * 1024


def read_at_most(stream, limit: int | None) -> bytes:
    """The stream's bytes to its end, or its first limit + 1 bytes when it has more than `limit`."""
    pieces, size = [], 0
    while limit is None or size <= limit:
        want = READ_PIECE if limit is None else min(READ_PIECE, limit + 1 - size)
        piece = stream.read(want)
        if not piece:
            break
        pieces.append(piece)
        size += len(piece)
    return b"".join(pieces)


class ChunkedBodies:
    def __init__(self, application):
        self.application = application

    def __call__(self, environ, start_response):
        if (
            not environ.get("CONTENT_LENGTH")
            and "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
            and environ.get("wsgi.input_terminated")
        ):
            body = read_at_most(environ["wsgi.input"], settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
        return self.application(environ, start_response)
