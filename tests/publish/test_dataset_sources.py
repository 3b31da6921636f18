"""Every published column read from the live file names a column the live file has, with the
same type: the datasets follow the metrics tables' one definition (metrics.schema)."""

from __future__ import annotations

import pytest

from metrics.schema import (
    CART_STATE,
    CHECKOUT_STATE,
    FUNNEL_LOG,
    ORDER_STATE,
    REFUND_STATE,
    SALES_LOG,
    ChangeLog,
    StateTable,
)
from shoppulse.publish.datasets import (
    CARTS,
    CHECKOUTS,
    FUNNEL_MINUTE,
    ORDERS,
    REFUNDS,
    SALES_MINUTE,
    Dataset,
)


@pytest.mark.parametrize(
    ("dataset", "state"),
    [
        (ORDERS, ORDER_STATE),
        (REFUNDS, REFUND_STATE),
        (CARTS, CART_STATE),
        (CHECKOUTS, CHECKOUT_STATE),
    ],
    ids=lambda x: getattr(x, "name", ""),
)
def test_each_entity_dataset_reads_columns_its_state_table_has(
    dataset: Dataset, state: StateTable
) -> None:
    types = {column.name: column.type for column in state.columns}
    read = [c for c in dataset.columns if c.live is not None]
    assert read, dataset.name
    for column in read:
        assert column.live in types, f"{dataset.name}.{column.name} reads {column.live}"
        assert column.type == types[column.live], f"{dataset.name}.{column.name}"


@pytest.mark.parametrize(
    ("dataset", "log"),
    [(SALES_MINUTE, SALES_LOG), (FUNNEL_MINUTE, FUNNEL_LOG)],
    ids=["sales", "funnel"],
)
def test_each_aggregate_dataset_is_its_change_log_per_minute(
    dataset: Dataset, log: ChangeLog
) -> None:
    assert [c.name for c in dataset.columns] == [*log.key, *log.value_names]
    published = {c.name: c.type for c in dataset.columns}
    for name, kind in log.values:
        assert published[name] == kind, name
