"""Names that reach SQL through f-strings are checked when they are set: a projection's
table (OrdersToShip), and the store's PRAGMA arguments (bound, or checked constants)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eda_lab.errors import InvalidArgument, InvalidIdentifier, check_identifier
from eda_lab.projections import InvalidTableName, OrdersToShip, ProjectionError
from eda_lab.store.sqlite import SQLiteEventStore

BAD = ["", "1st", "x; DROP TABLE events", "orders ship", "ordres-to-ship", "sqlite_master",
       "tablé", "a" * 64, 'x"y', "x--", None, 7]


@pytest.mark.parametrize("name", BAD)
def test_a_name_that_is_not_a_plain_identifier_is_refused_by_name(name: object) -> None:
    with pytest.raises(InvalidIdentifier, match="not a plain SQL identifier"):
        check_identifier(name, "table")


@given(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,62}", fullmatch=True)
       .filter(lambda s: not s.lower().startswith("sqlite_")))
def test_every_plain_identifier_is_accepted(name: str) -> None:
    assert check_identifier(name, "table") == name


@pytest.mark.parametrize("name", ["x; DROP TABLE checkpoints", "sqlite_schema", "täble"])
def test_a_projection_refuses_a_table_name_when_it_is_set(name: str) -> None:
    with pytest.raises(InvalidTableName, match="table name") as caught:
        OrdersToShip(table=name)
    assert isinstance(caught.value, ProjectionError | InvalidArgument)
    projection = OrdersToShip(table="ready_to_ship")
    with pytest.raises(InvalidTableName):
        projection.table = name
    assert projection.table == "ready_to_ship"
    projection.close()


def test_the_store_refuses_a_synchronous_setting_that_is_not_one_of_four() -> None:
    with pytest.raises(InvalidArgument, match="synchronous"):
        SQLiteEventStore(synchronous="OFF; DROP TABLE events")
