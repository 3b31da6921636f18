"""Hypothesis strategies for hostile webhook bodies and headers.

Bodies are built three ways: a real sample payload with a few fields replaced by hostile values,
deleted, or joined by extra fields; arbitrary JSON; and raw bytes that are not JSON at all (invalid
UTF-8, truncation, deep nesting, NaN/Infinity literals, lone surrogates).
"""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import strategies as st

#: The characters random header names are made of (a subset of HTTP's token characters).
_TOKEN = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-"

HOSTILE_TIMES = st.sampled_from(
    [
        "9999-12-31T23:59:59Z",
        "0001-01-01T00:00:00Z",
        "1970-01-01T00:00:00Z",
        "2026-06-03T00:00:00Z",  # two days after the tests' clock: quarantined as future
        "2026-06-01T00:00:00+14:00",
        "2026-05-31T23:59:59-12:00",
        "2026-13-45T99:99:99Z",
        "2026-06-01T00:00:00",  # no offset
        "yesterday",
        "",
    ]
)
HOSTILE_MONEY = st.sampled_from(
    [
        "-5.00",
        "-0.00",
        "0.0001",
        "0.00001",
        "99999999999999.9999",
        "100000000000000",
        "1e30",
        "-1e9999",
        "1e-9999",
        "NaN",
        "Infinity",
        "-Infinity",
        "12,50",
        "$10",
        " 10.00 ",
    ]
)
HOSTILE_SCALARS: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.sampled_from([2**63, -(2**63) - 1, 2**64, 10**20, -1, 0, 253402300800, -62135596800]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["\u202e\u0000id", "🛒" * 30, "x" * 5000, "Ω≈ç√∫", "\ud800"]),
    HOSTILE_TIMES,
    HOSTILE_MONEY,
    st.just([]),
    st.just({}),
)

JSON_VALUES: st.SearchStrategy[Any] = st.recursive(
    HOSTILE_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)


def dumps(value: Any) -> bytes:
    """JSON as a careless sender writes it: NaN/Infinity literals, big integers, any unicode."""
    return json.dumps(value, allow_nan=True).encode("utf-8", "surrogatepass")


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found: list[tuple[Any, ...]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            found.append((*prefix, key))
            found.extend(_paths(value, (*prefix, key)))
    elif isinstance(node, list):
        for index, value in enumerate(node[:5]):
            found.append((*prefix, index))
            found.extend(_paths(value, (*prefix, index)))
    return found


def _parent(root: Any, path: tuple[Any, ...]) -> Any:
    node = root
    for part in path[:-1]:
        node = node[part]
    return node


@st.composite
def mutated(draw: st.DrawFn, payload: Any) -> bytes:
    """`payload` with one to four fields replaced, deleted, or joined by a sibling."""
    value = copy.deepcopy(payload)
    paths = _paths(value)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = _parent(value, path)
        action = draw(st.sampled_from(["replace", "replace", "delete", "extra", "nest"]))
        key = path[-1]
        if action == "replace":
            parent[key] = draw(HOSTILE_SCALARS)
        elif action == "delete" and isinstance(parent, dict):
            del parent[key]
        elif action == "extra" and isinstance(parent, dict):
            parent[draw(st.text(max_size=16))] = draw(JSON_VALUES)
        elif action == "nest":
            depth = draw(st.integers(min_value=1, max_value=300))
            nested: Any = parent[key]
            for _ in range(depth):
                nested = [nested]
            parent[key] = nested
        paths = _paths(value)
    return dumps(value)


def _deep(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


RAW_BODIES = st.one_of(
    st.binary(max_size=200),
    st.sampled_from(
        [
            b"",
            b"   ",
            b"null",
            b"[]",
            b"{}",
            b'"\\ud800"',
            b"\xff\xfe{\x00}",
            b'{"id": "\xc3\x28"}',
            b'{"total_price": NaN, "id": 1}',
            b'{"amount": Infinity}',
            b'{"amount": 1e400}',
            b"[" * 5000 + b"]" * 5000,
            _deep(1100),
            _deep(200),
        ]
    ),
)


def bodies(samples: list[bytes]) -> st.SearchStrategy[bytes]:
    """Hostile bodies around the given real samples (mostly mutated samples)."""
    parsed = [json.loads(body) for body in samples]
    options: list[st.SearchStrategy[bytes]] = [RAW_BODIES, JSON_VALUES.map(dumps)]
    if parsed:
        seeds = st.sampled_from(parsed)
        mutations = seeds.flatmap(mutated)
        truncated = st.sampled_from(samples).flatmap(
            lambda body: st.integers(min_value=0, max_value=len(body) - 1).map(lambda n: body[:n])
        )
        options = [mutations, mutations, mutations, st.sampled_from(samples), truncated, *options]
    return st.one_of(options)


HEADER_NAMES = st.text(alphabet=_TOKEN, min_size=1, max_size=24)
#: Header values as bytes: printable ASCII and latin-1 octets that are not valid UTF-8.
HEADER_VALUES = st.binary(max_size=64).map(
    lambda raw: bytes(b for b in raw if b >= 0x20 and b != 0x7F).strip()
)


def extra_headers(reserved: set[str]) -> st.SearchStrategy[dict[str, bytes]]:
    """Random extra headers whose names do not collide with `reserved` (lower-case)."""
    return st.dictionaries(
        HEADER_NAMES.filter(lambda name: name.lower() not in reserved and name.lower() != "host"),
        HEADER_VALUES,
        max_size=6,
    )


DELIVERY_IDS = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=60
)
TOPICS = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
