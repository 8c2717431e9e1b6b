"""Notebook 03's exercises: the build-it checks under fault schedules, and the predictions.

Each build-it check must pass the notebook's solution on all 50 schedules and fail the
mistakes learners really make, naming the invariant the mistake breaks; replaying the
failing seed must break the same invariant again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from eda_lab.events import Event
from eda_lab.lessons import check
from eda_lab.lessons.n03_event_sourcing import _ReferenceOrder, _retrying_save
from eda_lab.orders import Order
from eda_lab.sourcing import Repository, on
from eda_lab.store import ConcurrencyError
from eda_lab.testing.build_checks import assert_breaks

# -- 03.1: a command that decides and a handler that applies -------------------------------
#: The notebook's solution of 03.1: the lesson's own yardstick, which the tests reuse.
DiscountedOrder = _ReferenceOrder


class ChangesStateInTheCommand(DiscountedOrder):
    """The command changes the state itself; the handler does nothing: live is right,
    a replay (handlers only) never sees the discount."""

    def apply_discount(self, code: str, percent: float) -> None:
        if self.status != "placed" or self.discount_code is not None:
            raise self._refuse("no discount now.")
        amount = round(self.total * percent / 100, 2)
        self.discount_code, self.discount = code, amount
        self.total = round(self.total - amount, 2)
        self._record("DiscountApplied", {"order_id": self.id, "code": code,
                                         "percent": percent, "amount": amount})

    @on("DiscountApplied")
    def _discount_applied(self, event: Event) -> None:
        pass


class ChecksNoRule(DiscountedOrder):
    """Records every discount it is asked for."""

    def apply_discount(self, code: str, percent: float) -> None:
        amount = round(self.total * percent / 100, 2)
        self._record("DiscountApplied", {"order_id": self.id, "code": code,
                                         "percent": percent, "amount": amount})


class ChecksOnlyTheStatus(DiscountedOrder):
    """Forgets "at most one": a second code, or the same command delivered twice, stacks."""

    def apply_discount(self, code: str, percent: float) -> None:
        if self.status != "placed":
            raise self._refuse("only a placed order takes a discount.")
        amount = round(self.total * percent / 100, 2)
        self._record("DiscountApplied", {"order_id": self.id, "code": code,
                                         "percent": percent, "amount": amount})


class HandlerKeepsTheTotal(DiscountedOrder):
    """The handler remembers the discount but never takes it off the total."""

    @on("DiscountApplied")
    def _discount_applied(self, event: Event) -> None:
        self.discount_code = event.data["code"]
        self.discount = event.data["amount"]


class RefusesEveryDiscount(DiscountedOrder):
    def apply_discount(self, code: str, percent: float) -> None:
        raise self._refuse("no discounts today.")


# -- 03.3: a writer that decides again after a conflict -------------------------------------
Decide = Callable[[Order], None]


#: The notebook's solution of 03.3: the lesson's own writer, which the tests reuse.
save_with_retry = _retrying_save


def swallows_the_conflict(repository: Repository[Any], order: Order, decide: Decide) -> Order:
    decide(order)
    try:  # noqa: SIM105 - written the way the mistake is usually written
        repository.save(order)
    except ConcurrencyError:
        pass
    return order


def reloads_without_deciding(repository: Repository[Any], order: Order,
                             decide: Decide) -> Order:
    decide(order)
    try:
        repository.save(order)
    except ConcurrencyError:
        order = repository.load(order.id)
        repository.save(order)  # nothing pending: the decision is gone
    return order


def saves_the_stale_copy_again(repository: Repository[Any], order: Order,
                               decide: Decide) -> Order:
    decide(order)
    try:
        repository.save(order)
    except ConcurrencyError:
        repository.save(order)
    return order


def retries_once(repository: Repository[Any], order: Order, decide: Decide) -> Order:
    """Decides again once; the web shop can race the second save too."""
    decide(order)
    try:
        repository.save(order)
    except ConcurrencyError:
        order = repository.load(order.id)
        decide(order)
        repository.save(order)
    return order


def appends_blindly(repository: Repository[Any], order: Order, decide: Decide) -> Order:
    """Appends the stale decision at whatever version the stream is at now."""
    decide(order)
    try:
        repository.save(order)
    except ConcurrencyError:
        pending = order.collect_pending()
        repository.store.append(order.id, pending,
                                expected_version=repository.store.version(order.id))
        order.mark_saved(pending)
    return order


@pytest.mark.parametrize(("exercise_id", "solution"), [
    ("03.1", DiscountedOrder), ("03.3", save_with_retry)])
def test_the_solution_keeps_every_invariant_under_50_schedules(exercise_id: str,
                                                               solution: Any) -> None:
    result = check(exercise_id, solution, quiet=True)
    assert result, result.message
    assert result.schedules is not None and result.schedules["run"] == 50
    assert result.schedules["faults"] > 50


@pytest.mark.parametrize(("exercise_id", "wrong", "invariant"), [
    ("03.1", ChangesStateInTheCommand, "replay-equals-live"),
    ("03.1", ChecksNoRule, "rules-hold"),
    ("03.1", ChecksOnlyTheStatus, "rules-hold"),
    ("03.1", HandlerKeepsTheTotal, "discount-counted"),
    ("03.1", RefusesEveryDiscount, "discount-counted"),
    ("03.3", swallows_the_conflict, "no-lost-update"),
    ("03.3", reloads_without_deciding, "no-lost-update"),
    ("03.3", saves_the_stale_copy_again, "runs"),
    ("03.3", retries_once, "runs"),
    ("03.3", appends_blindly, "rules-hold"),
])
def test_a_plausible_mistake_breaks_the_invariant_it_should(exercise_id: str, wrong: Any,
                                                           invariant: str) -> None:
    assert_breaks(exercise_id, wrong, invariant)


def test_a_replay_that_differs_says_which_attributes_differ() -> None:
    result = check("03.1", ChangesStateInTheCommand, quiet=True)
    assert "live order has total=" in result.message
    assert "replaying the stream gives total=" in result.message
    assert "Which of your two methods changed the state?" in result.message


def test_03_1_wants_the_class_itself() -> None:
    result = check("03.1", lambda: None, quiet=True)
    assert not result and "pass the class itself" in result.message
    refused = check("03.1", 3, quiet=True)
    assert not refused and refused.message.startswith("you gave an int (3); answer with a "
                                                      "function")


def test_a_stub_is_named_a_stub() -> None:
    class Stub(DiscountedOrder):
        def apply_discount(self, code: str, percent: float) -> None:
            raise NotImplementedError("write apply_discount: ...")

    def stub(repository: Repository[Any], order: Order, decide: Decide) -> Order:
        raise NotImplementedError("write save_with_retry: ...")

    for exercise_id, code in (("03.1", Stub), ("03.3", stub)):
        result = check(exercise_id, code, quiet=True)
        assert not result and "still the stub" in result.message


# -- the predictions ----------------------------------------------------------------------
@pytest.mark.parametrize(("exercise_id", "right", "wrong", "why"), [
    ("03.2", (2, 3), (3, 2), "swapped"),
    ("03.2", (2, 3), (2, 4), "version 2 plus Alice's one event"),
    ("03.2", [2, 3], (3, 3), "expects the version Bob loaded"),
    ("03.4", 200, 2, "replays all 200 events"),
    ("03.4", 200, 0, "replays the whole stream"),
    ("03.5", (1, 0), (0, 0), "sends the receipt again"),
    ("03.5", (1, 0), (1, 1), "suppresses the side effect"),
])
def test_a_prediction_is_confirmed_or_explained(exercise_id: str, right: Any, wrong: Any,
                                               why: str) -> None:
    assert check(exercise_id, right, quiet=True)
    result = check(exercise_id, wrong, quiet=True)
    assert not result and why in result.message


@pytest.mark.parametrize(("exercise_id", "answer", "expected"), [
    ("03.2", 23, "you gave an int (23); answer with a tuple (int, int)."),
    ("03.2", (2, "3"), "item 2 of your tuple: you gave a str ('3')"),
    ("03.4", 200.0, "you gave a float (200.0); answer with an int"),
    ("03.4", "200", "you gave a str ('200'); answer with an int"),
    ("03.5", 1, "you gave an int (1); answer with a tuple (int, int)."),
])
def test_a_prediction_of_the_wrong_type_is_refused(exercise_id: str, answer: Any,
                                                  expected: str) -> None:
    result = check(exercise_id, answer, quiet=True)
    assert not result and result.message.startswith(expected)


def test_a_save_step_that_returns_nothing_is_told_to_return_the_order() -> None:
    def forgets_to_return(repository: Repository[Any], order: Order, decide: Decide) -> None:
        save_with_retry(repository, order, decide)

    result = check("03.3", forgets_to_return, quiet=True)
    assert not result and result.schedules is not None
    assert result.schedules["invariant"] == "runs"
    assert "return the order as saved" in result.message


def test_an_order_id_not_in_the_store_is_named_with_the_orders_there_are() -> None:
    from eda_lab.errors import InvalidArgument
    from eda_lab.lessons.n03_event_sourcing import stored_order
    from eda_lab.shop import load_shop
    from eda_lab.store import InMemoryEventStore

    store = InMemoryEventStore()
    placed = [e for e in load_shop().events(types=["OrderPlaced"])][:5]
    for event in placed:
        store.append(event.subject, [event], expected_version=0)
    first, last = sorted(e.subject for e in placed)[::len(placed) - 1]
    assert stored_order(store, placed[2].subject) == placed[2].subject
    with pytest.raises(InvalidArgument) as raised:
        stored_order(store, "O-99999")
    message = str(raised.value)
    assert "ORDER_ID='O-99999'" in message and f"{first} to {last}" in message
    assert "repository.create" not in message


# -- the scratch folder -------------------------------------------------------------------
def test_a_scratch_folder_sweeps_the_folders_of_killed_kernels(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A kernel killed before its exit handlers ran leaves its folder behind; the next
    notebook run removes it (its process is gone) but never a live kernel's folder."""
    import os
    import subprocess
    import sys
    import tempfile

    from eda_lab.lessons.n03_event_sourcing import scratch_folder

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead = tmp_path / f"eda_lab_03_{int(gone.stdout)}_abc"
    alive = tmp_path / f"eda_lab_03_{os.getppid()}_def"  # the process that started pytest
    other = tmp_path / "eda_lab_03_notapid"
    for folder in (dead, alive, other):
        folder.mkdir()
    made = scratch_folder()
    assert made.parent == tmp_path and made.name.startswith(f"eda_lab_03_{os.getpid()}_")
    assert not dead.exists() and alive.exists() and other.exists()


def test_a_scratch_folder_prefix_that_names_no_folder_is_refused() -> None:
    from eda_lab.errors import InvalidArgument
    from eda_lab.lessons.n03_event_sourcing import scratch_folder

    for prefix in ("bad\0", "a/b", ""):
        with pytest.raises(InvalidArgument, match="folder-name prefix"):
            scratch_folder(prefix)
