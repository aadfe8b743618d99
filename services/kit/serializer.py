"""The kit's message serializer: kombu's JSON, written and read by orjson.

Every CareLoop process (services, gateway, standalone proxies) names it in its nameko config
(``serializer: careloop-json``, ``SERIALIZERS`` in ``deploy/config.yml``; ``NAMEKO_CONFIG`` below is the
same for code that builds a config by hand). It is the **same wire format** as nameko's default (kombu's
``json``, content type ``application/json``): a process on either can talk to a process on the other, a
message parked in a dead-letter queue reads the same, and a non-Python client sees plain JSON.

Values cross exactly as they did with kombu's ``json``, never changed silently:

- plain JSON values (``str``, ``int``, ``bool``, ``None``, finite ``float``, ``list``/``tuple``, ``dict``
  with ``str`` keys — the exact built-in types) are written by orjson;
- anything else — ``datetime``/``date``/``time``, ``Decimal``, ``UUID``, ``bytes`` (kombu's
  ``{"__type__": …, "__value__": …}`` envelopes, which come back as the same Python objects), a
  non-finite float, a non-``str`` key (kombu makes it a string), an enum, a subclass, an int beyond 64 bits
  — goes through kombu's own encoder, which keeps today's value or raises ``TypeError`` as it always did.
  orjson would have written a UUID as a bare string and NaN as ``null``: that is why the check is by
  exact type and not left to orjson.
- reading: orjson, unless the body holds an envelope (``"__type__"``), a number orjson would read as a
  float (an integer beyond 64 bits: 19 digits in a row), or is something orjson refuses that Python's
  ``json`` accepts (``NaN``, lone surrogates): then kombu's decoder, as before.

Why: nameko encodes each RPC reply twice (a "can it be serialised" check, then the publish) and kombu's
encoder builds a ``JSONEncoder`` per call; for the kit's small messages this is several times faster
(``tests/perf/RESULTS.md``, "Framework tax").
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson
from kombu.utils import json as kombu_json

NAME = "careloop-json"
CONTENT_TYPE = "application/json"
CONTENT_ENCODING = "utf-8"
NAMEKO_CONFIG: dict[str, Any] = {
    "serializer": NAME,
    "SERIALIZERS": {NAME: {"encoder": "services.kit.serializer.dumps", "decoder": "services.kit.serializer.loads",
                           "content_type": CONTENT_TYPE, "content_encoding": CONTENT_ENCODING}},
}
"""The nameko config keys that select this serializer (deploy/config.yml carries the same)."""

_ENVELOPE = b'"__type__"'
_ENVELOPE_TEXT = '"__type__"'
_DIGITS_AS_ZEROS = bytes.maketrans(b"123456789", b"000000000")
_NINETEEN_DIGITS = b"0" * 19
_LONG_NUMBER_TEXT = re.compile(r"\d{19}")
"""orjson reads an integer outside [-2**63, 2**64) as a float: 19 digits in a row may be one (or a long
float, or digits in a string); those bodies are read by Python's json, which keeps big integers. Found by
``translate`` and a substring search on bytes (~0.3 µs for a small reply; a regex took 3.7 µs)."""


def _plain(value: Any) -> bool:
    """Whether ``value`` holds only the exact built-in JSON types (what orjson and kombu write alike)."""
    kind = type(value)
    if kind is dict:
        for key in value:
            if type(key) is not str:
                return False
        items: Any = value.values()
    elif kind is list or kind is tuple:
        items = value
    else:
        return kind is str or kind is int or kind is bool or value is None or (
            kind is float and math.isfinite(value))
    for item in items:  # scalars checked here, not by a call each: this runs on every message
        kind = type(item)
        if kind is str or kind is int or kind is bool or item is None:
            continue
        if kind is float:
            if not math.isfinite(item):
                return False
        elif not _plain(item):
            return False
    return True


def dumps(value: Any) -> bytes | str:
    """Encode ``value`` as kombu's ``json`` would (see the module's docstring)."""
    if _plain(value):
        try:
            return orjson.dumps(value)
        except orjson.JSONEncodeError:  # an int beyond 64 bits, nesting deeper than orjson's 254 levels
            pass
    return kombu_json.dumps(value)


def json_text(value: Any) -> str:
    """``value`` as JSON text, as ``json.dumps`` would accept it (what is not JSON is refused, never enveloped):
    by orjson for plain values (compact, UTF-8), else by ``json.dumps`` (NaN, non-``str`` keys, big integers)."""
    if _plain(value):
        try:
            return orjson.dumps(value).decode()
        except orjson.JSONEncodeError:
            pass
    return json.dumps(value)


def loads(body: bytes | bytearray | memoryview | str) -> Any:
    """Decode a JSON body as kombu's ``json`` would (envelopes back into their Python objects)."""
    if isinstance(body, memoryview):
        body = body.tobytes()
    if isinstance(body, str):
        plain = _ENVELOPE_TEXT not in body and _LONG_NUMBER_TEXT.search(body) is None
    else:
        plain = _ENVELOPE not in body and _NINETEEN_DIGITS not in body.translate(_DIGITS_AS_ZEROS)
    if plain:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:  # NaN, Infinity, lone surrogates: Python's json reads them
            pass
    return kombu_json.loads(body)
