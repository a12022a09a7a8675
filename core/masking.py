"""Secret values out of every text that is stored or shown: log lines, failure and warning messages.

One function, `secret_masker(values)`, gives the masking callable every path uses (the prebuild
reporter's log lines, its status messages, the container guard's view of the CLI's output). Each
value is replaced by MASK, and so are its base64 (standard and URL-safe, with and without padding)
and URL-encoded (percent-encoding, also with `+` for spaces) forms, which a program that prints a
credential in an Authorization header or a URL would show. Lines a program wrote in pieces are
whole by the time they are masked: the runner assembles a line from its pieces (runner._proc._split)
before delivering it.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterable
from urllib.parse import quote, quote_plus

MASK = "***"
# Values this short would mask common words; services refuse them (projects.secrets).
MIN_MASKED_LENGTH = 4


def encoded_forms(value: str) -> set[str]:
    """The value and the encodings of it a log may show."""
    raw = value.encode()
    forms = {value, quote(value, safe=""), quote(value), quote_plus(value)}
    for encoded in (base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()):
        forms.add(encoded)
        forms.add(encoded.rstrip("="))
    return {form for form in forms if len(form) >= MIN_MASKED_LENGTH}


def secret_masker(values: Iterable[str]) -> Callable[[str], str]:
    """A function that replaces every form of every value in a text by MASK; identity when there
    is no value."""
    forms: set[str] = set()
    for value in values:
        if value and len(value) >= MIN_MASKED_LENGTH:
            forms |= encoded_forms(value)
            # Each line of a multi-line value (a key file) on its own, as a program prints it.
            forms |= {line for line in value.splitlines() if len(line.strip()) >= MIN_MASKED_LENGTH}
    if not forms:
        return lambda text: text
    # Longest first, so a value containing another is masked whole.
    pattern = re.compile("|".join(re.escape(form) for form in sorted(forms, key=len, reverse=True)))

    def mask(text: str) -> str:
        return pattern.sub(MASK, text) if text else text

    return mask
