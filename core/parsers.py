"""The REST API's JSON parser: every malformed body is a 400.

DRF's JSONParser turns a ValueError into a ParseError (400), but a deeply nested body ('[' * 100000)
makes the json module raise RecursionError, which is not a ValueError, and came out as a 500."""

from __future__ import annotations

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class SafeJSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the body is nested too deeply") from None
