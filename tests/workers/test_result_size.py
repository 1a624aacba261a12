"""A result's JSON is measured without being built (`workers.result_size`): the count is `json.dumps`'s, and
refusing a huge result (`lifecycle.oversized_result`) costs about the limit, in time and memory."""

from __future__ import annotations

import enum
import json
import time
import tracemalloc
from typing import Any

import pytest

from workers.lifecycle import oversized_result
from workers.result_size import SLICE, json_size


class Colour(int, enum.Enum):
    RED = 1


VALUES: list[Any] = [
    None, True, False, 0, -5, 10**30, 1.5, -0.0, 1e300, float("nan"), float("inf"), -float("inf"), Colour.RED,
    "", 'é\x01"\\\n\t😀\ud800', "x" * (3 * SLICE + 7) + "é" * SLICE, [], {}, [[]], [{}], ("a", 1),
    {"a": 1}, {7: 2, 2.5: 3, None: 4, True: [1, {}], False: "f"}, {"é😀" * SLICE: "long key"},
    {"k": [{"a": [1, 2.25, {"b": None}]}] * 3, "texts": ["one", "two"], "nested": [[[[[]]]]]},
]


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_json_size_counts_what_json_dumps_writes(value: Any) -> None:
    assert json_size(value, 2**40) == len(json.dumps(value).encode())


def test_json_size_refuses_what_json_dumps_refuses() -> None:
    with pytest.raises(TypeError, match="set is not JSON serializable"):
        json_size({"a": {1, 2}}, 1000)
    with pytest.raises(TypeError, match="keys must be"):
        json_size({(1, 2): "tuple key"}, 1000)


def test_json_size_stops_past_the_limit() -> None:
    looped: list[Any] = []
    looped.append(looped)  # json.dumps would raise; the count passes any limit instead
    assert 1000 < json_size(looped, 1000) < 1100


@pytest.mark.parametrize("result", [
    {"text": "é" * 20_000_000},  # one string of 120 MB as JSON
    {"fields": {f"f{i}": ["é" * 1000] * 2000 for i in range(10)}},  # 120 MB of JSON in 20,000 strings
], ids=["one long string", "many strings"])
def test_refusing_a_huge_result_costs_about_its_limit(result: Any) -> None:
    tracemalloc.start()
    started = time.perf_counter()
    try:
        error = oversized_result(result, 1024 * 1024)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    took_s = time.perf_counter() - started
    print(f"refused in {took_s * 1000:.1f} ms, {peak / 1024:.0f} KiB at most")
    assert error is not None and error["code"] == "result_too_large"
    assert "more than 1048576 bytes of JSON" in error["message"] and "RESULT_MAX_BYTES" in error["message"]
    assert peak < 1024 * 1024  # json.dumps took 240 MB (the string, then its bytes)
    assert took_s < 1.0


def test_a_result_within_the_limit_is_accepted() -> None:
    result = {"fields": {"p": ["é" * 1000] * 100}}  # 600 kB of JSON
    assert oversized_result(result, 1024 * 1024) is None
    assert oversized_result(result, len(json.dumps(result))) is None
    assert oversized_result(result, len(json.dumps(result)) - 1) is not None
