"""The one JSON parser of every endpoint: bounded in size and depth, and quiet on errors.

DRF's ``JSONParser`` reads any body the server lets through, recurses once per nesting
level (100000 ``[`` are a ``RecursionError`` and a 500 with a traceback in the log) and
answers malformed JSON with Python's exception text (``JSON parse error - Expecting value:
line 1 column 1 (char 0)``). This parser refuses, before decoding:

* a body longer than ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (Django's own bound, which DRF's
  ``request.body`` enforces first -- the exception handler of :mod:`auth_backend.core.errors`
  answers it with :func:`body_too_large` -- checked again here for a stream that did not
  come through it);
* JSON nested deeper than ``JSON_MAX_DEPTH`` arrays/objects (counted outside strings);

and answers those and any JSON the decoder refuses (including ``NaN``/``Infinity``, which
JSON does not have) with 400 ``parse_error`` and a message of ours, in the error shape of
:mod:`auth_backend.core.errors`. Settings: ``REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"]``.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import IO, Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

# A JSON string literal: its brackets are text, not nesting.
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(rb"[\[\]{}]")
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}

NOT_JSON = "The request body is not valid JSON."


def json_depth(body: bytes) -> int:
    """How deep ``body``'s arrays and objects nest (0 for a scalar), brackets in strings
    not counted. Linear, no recursion; malformed input gives some number, never an error."""
    brackets = _BRACKETS.findall(_STRING.sub(b'""', body))
    return max(accumulate(_STEP[b[0]] for b in brackets), default=0)


def body_too_large() -> ParseError:
    """400 ``parse_error``: the body is over ``DATA_UPLOAD_MAX_MEMORY_SIZE``."""
    return ParseError(
        f"The request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes."
    )


def _reject(value: str) -> Any:
    raise ValueError(value)


class BoundedJSONParser(JSONParser):
    def parse(
        self, stream: IO[bytes] | None, media_type: str | None = None, parser_context: Any = None
    ) -> Any:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        body = stream.read(limit + 1) if stream is not None else b""
        if len(body) > limit:
            raise body_too_large()
        max_depth = settings.JSON_MAX_DEPTH
        if json_depth(body) > max_depth:
            raise ParseError(f"The JSON body nests deeper than {max_depth} levels.")
        try:
            return json.loads(body, parse_constant=_reject)
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            raise ParseError(NOT_JSON) from None
