"""The size of a result's JSON, measured without building it.

`json.dumps` of a 500 MB result needs another 500 MB or more (the string, then its bytes) only to learn
that it is too large, in a child whose memory is capped (`workers.memory`). `json_size` walks the value
instead and stops as soon as the count passes the limit, so refusing a huge result costs about the limit
in time and next to nothing in memory; a long string is measured slice by slice.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from json.encoder import encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any

SLICE = 64 * 1024  # characters of a string escaped at a time
_CONSTANTS = {True: 4, False: 5, None: 4}  # true, false, null
_SEPARATOR = 2  # ", " between items and ": " after a key, as `json.dumps` writes them


def json_size(value: Any, limit: int) -> int:
    """The length in bytes of `json.dumps(value)` (ASCII, so characters are bytes), or some count above
    `limit` once it passes it. Raises `TypeError` for what `json.dumps` cannot encode."""
    size = 0
    pending: list[Iterator[Any]] = [iter((value,))]  # the values still to count, container by container
    while pending and size <= limit:
        item = next(pending[-1], _END)
        if item is _END:
            pending.pop()
        elif type(item) is str and len(item) <= SLICE:  # the most common by far: the short way
            size += len(encode_basestring_ascii(item))
        elif isinstance(item, dict):
            size += 2 + max(0, 2 * len(item) - 1) * _SEPARATOR
            for key in item:
                size += _key_size(key, limit - size)
                if size > limit:
                    break
            pending.append(iter(item.values()))
        elif isinstance(item, list | tuple):
            size += 2 + max(0, len(item) - 1) * _SEPARATOR
            pending.append(iter(item))
        else:
            size += _scalar_size(item, limit - size)
    return size


def _scalar_size(value: Any, budget: int) -> int:
    if isinstance(value, str):
        return _string_size(value, budget)
    if value is None or isinstance(value, bool):
        return _CONSTANTS[value]
    if isinstance(value, int):
        return len(int.__repr__(value))
    if isinstance(value, float):
        return len(_float_text(value))
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _string_size(text: str, budget: int) -> int:
    if len(text) <= SLICE:
        return len(encode_basestring_ascii(text))
    size = 2
    for start in range(0, len(text), SLICE):
        size += len(encode_basestring_ascii(text[start:start + SLICE])) - 2
        if size > budget:
            break
    return size


def _key_size(key: Any, budget: int) -> int:
    if isinstance(key, str):
        return _string_size(key, budget)
    if key is None or isinstance(key, bool):
        return _CONSTANTS[key] + 2
    if isinstance(key, int):
        return len(int.__repr__(key)) + 2
    if isinstance(key, float):
        return len(_float_text(key)) + 2
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


def _float_text(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return float.__repr__(value)


_END = object()

__all__ = ["json_size"]
