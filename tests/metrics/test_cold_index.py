"""The cold index answers exactly which hashes it holds, whatever the runs and the query order."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from metrics.store import ColdIndex

hashes = st.lists(st.integers(min_value=0, max_value=2**64 - 1), max_size=60)


@given(runs=st.lists(hashes, max_size=12), queries=hashes, reuse=st.lists(st.integers(0, 500)))
def test_may_contain_is_membership(
    runs: list[list[int]], queries: list[int], reuse: list[int]
) -> None:
    index = ColdIndex()
    held: set[int] = set()
    for run in runs:  # more than 8 runs are merged into one on the way
        index.add(np.array(run, dtype=np.uint64))
        held.update(run)
    stored = sorted(held)
    if stored:  # some queries hit stored hashes, in any order
        queries = queries + [stored[i % len(stored)] for i in reuse]
    wanted = np.array(queries, dtype=np.uint64)
    assert index.may_contain(wanted).tolist() == [q in held for q in queries]
    assert len(index) >= len(held)
