"""The event store contract suite: every backend, ours or yours, must pass it.

:class:`EventStoreContract` holds the tests; it is abstract, and pytest does not
collect it by itself. A backend's test module subclasses it once and provides a
factory, as the ``eventsourcing`` library's persistence tests do::

    from eda_lab.testing.store_contract import EventStoreContract

    class TestMyEventStore(EventStoreContract):
        def make_store(self, tmp_path, **kwargs):
            return MyEventStore(tmp_path / "events", **kwargs)

Then ``pytest`` runs every contract test against ``MyEventStore``: appends and
reads, optimistic concurrency, the four rules of idempotent append, times in
UTC, deeply immutable data, snapshots, upcasting, a model-based property test
(hypothesis compares the store with a dict of lists after any sequence of
appends) and two threads racing for one version. The helpers below
(:func:`ev`, :func:`append_retrying`, :func:`race_two_writer_processes`,
:func:`assert_no_write_lost_or_doubled`) let a backend's own module add races
between real processes.

This module needs ``pytest`` and ``hypothesis`` (the ``test`` extra); nothing
in :mod:`eda_lab` imports it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eda_lab.errors import EdaLabError, check_instance, check_number
from eda_lab.events import Event, ReadOnlyData
from eda_lab.store.contract import (
    ConcurrencyError,
    EventIdConflict,
    EventStore,
    Recorded,
    Snapshot,
    catch_up,
)
from eda_lab.upcasting import SchemaVersionError, Upcasters

__all__ = [
    "T0",
    "EventStoreContract",
    "append_retrying",
    "assert_no_write_lost_or_doubled",
    "ev",
    "race_two_writer_processes",
]

#: The time of ``ev(0)``; ``ev(n)`` is ``n`` seconds later.
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def ev(n: int, type: str = "ItemAdded", stream: str = "O-1", **attrs: Any) -> Event:
    """Event number ``n`` of ``stream``: id ``"<stream>-e<n>"``, time ``T0 + n`` seconds.

    >>> ev(2).id, ev(2).data["price"]
    ('O-1-e2', 3.0)
    """
    check_number(n, "n", low=0, high=10**9, integer=True)
    attrs.setdefault("id", f"{stream}-e{n}")
    attrs.setdefault("time", T0 + timedelta(seconds=n))
    return Event(type, {"n": n, "price": n * 1.5}, subject=stream, source="shop", **attrs)


def append_retrying(store: EventStore, writer: str, count: int) -> int:
    """Append ``count`` events to the stream "counter" as ``writer``, each with the
    version just read; on ConcurrencyError read again and retry. Returns how many
    appends lost a race (the races of the two-writer tests)."""
    check_instance(store, "store", EventStore)
    check_number(count, "count", low=0, high=100_000, integer=True)
    lost = 0
    for i in range(count):
        while True:
            seen = store.version("counter")
            try:
                store.append("counter", [ev(i, stream="counter", id=f"{writer}-{i}")],
                             expected_version=seen)
                break
            except ConcurrencyError:
                lost += 1
    return lost


def race_two_writer_processes(ctx: Any, target: Callable[..., None],
                              args_for: Callable[[str], tuple[Any, ...]]) -> None:
    """Run writers "p" and "q" as two processes of ``ctx`` (each calls
    ``target(*args_for(name), results)`` and puts ``(name, conflicts)`` on results)."""
    results = ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args_for(name), results)) for name in "pq"]
    for proc in procs:
        proc.start()
    done = [results.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    assert sorted(name for name, _ in done) == ["p", "q"]


def assert_no_write_lost_or_doubled(records: list[Recorded], count: int) -> None:
    """The "counter" stream after two retrying writers of ``count`` events each."""
    ids = [r.event.id for r in records]
    assert len(ids) == 2 * count == len(set(ids))
    assert [r.version for r in records] == list(range(1, 2 * count + 1))
    for writer in "pq":  # each writer's events stay in its own order
        assert [int(i[2:]) for i in ids if i[0] == writer] == list(range(count))


class EventStoreContract:
    """The contract tests. Subclass once per backend and define :meth:`make_store`.

    pytest does not collect this base class (``__test__ = False``); every subclass
    is collected (``__init_subclass__`` sets ``__test__ = True`` unless the
    subclass says otherwise, for an intermediate base of your own).
    """

    __test__ = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__test__" not in cls.__dict__:
            cls.__test__ = True

    def make_store(self, tmp_path: Path, **kwargs: Any) -> EventStore:
        """A new, empty store; ``tmp_path`` is a fresh directory it may use, and
        ``kwargs`` are store options the tests pass (``upcasters=...``)."""
        raise NotImplementedError(f"{type(self).__name__} must define make_store")

    @pytest.fixture
    def store(self, tmp_path: Path) -> Any:
        return self.make_store(tmp_path)

    # -- basics ----------------------------------------------------------------------
    def test_is_an_event_store(self, store: Any) -> None:
        assert isinstance(store, EventStore)

    def test_empty_store(self, store: Any) -> None:
        assert store.read("nope") == []
        assert store.read_all() == []
        assert store.version("nope") == 0
        assert store.streams() == []
        assert store.last_position == 0

    def test_append_and_read_back(self, store: Any) -> None:
        events = [ev(1), ev(2), ev(3)]
        recorded = store.append("O-1", events, expected_version=0)
        assert [(r.stream_id, r.version, r.position) for r in recorded] == [
            ("O-1", 1, 1), ("O-1", 2, 2), ("O-1", 3, 3)]
        assert all(isinstance(r, Recorded) for r in recorded)
        read = store.read("O-1")
        assert [r.event for r in read] == events
        assert [r.version for r in read] == [1, 2, 3]
        assert store.version("O-1") == 3
        assert store.last_position == 3

    def test_what_append_returns_behaves_like_a_list(self, store: Any) -> None:
        store.append("O-0", [ev(0, stream="O-0")])
        recorded = store.append("O-1", [ev(1), ev(2), ev(3)], expected_version=0)
        read = store.read("O-1")
        assert recorded == read and read == recorded
        assert recorded != read[:2] and recorded != "not a list"
        assert len(recorded) == 3 and list(recorded) == read
        assert recorded[0] == read[0] and recorded[-1] == read[2]
        assert recorded[-1].position == 4 and recorded[-3].version == 1
        assert recorded[1:] == read[1:] and recorded[::-1] == read[::-1]
        assert repr(recorded) == repr(read)
        for bad in (3, -4):
            with pytest.raises(IndexError):
                recorded[bad]
        with pytest.raises(TypeError):
            hash(recorded)

    def test_every_attribute_survives(self, store: Any) -> None:
        plus2 = timezone(timedelta(hours=2))
        event = Event("OrderPaid", {"amount": 10.25, "nested": {"a": [1, 2.5, None, True]},
                                    "text": "café ✓"},
                      subject="O-9", source="shop", id="x-1",
                      time=datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=plus2),
                      sequence=7, correlation_id="corr", causation_id="cause",
                      schema_version=2, actor="alice", dataschema="urn:shop:OrderPaid:2")
        store.append("O-9", [event])
        back = store.read("O-9")[0].event
        assert back == event and back.actor == "alice"
        assert back.dataschema == "urn:shop:OrderPaid:2"
        assert back.time == event.time and back.time.utcoffset() == timedelta(0)
        assert back.size == event.size
        assert dict(back.data) == dict(event.data)
        with pytest.raises(TypeError):
            back.data["amount"] = 1

    def test_times_come_back_in_utc(self, store: Any) -> None:
        """Whatever zone an event was stamped in, every backend returns the same
        instant in UTC: from append, read and read_all, and for snapshots."""
        plus2 = timezone(timedelta(hours=2))
        stamped = datetime(2026, 3, 1, 14, 30, tzinfo=plus2)
        event = ev(1).evolve(time=stamped)
        appended = store.append("O-1", [event])
        for rec in [*appended, *store.read("O-1"), *store.read_all()]:
            assert rec.event.time == stamped  # the same instant...
            assert rec.event.time.utcoffset() == timedelta(0)  # ...in UTC
            assert rec.event.time.tzinfo is UTC
        assert store.append("O-1", [event]) == store.read("O-1")  # a retry: a duplicate
        store.save_snapshot(Snapshot("O-1", 1, {"n": 1}, "Order", stamped))
        snap = store.latest_snapshot("O-1")
        assert snap.time == stamped and snap.time.utcoffset() == timedelta(0)

    def test_nested_data_cannot_be_changed_after_append(self, store: Any) -> None:
        """Event data is frozen all the way down: neither the caller's event, nor
        the dicts and lists it was built from, nor what a read returns can change
        what the store returns next."""
        lines = [{"sku": "A", "qty": 1}]
        data: dict[str, Any] = {"lines": lines, "address": {"city": "Lyon", "tags": ["home"]}}
        event = Event("OrderPlaced", data, subject="O-1", id="e-1", time=T0)
        store.append("O-1", [event])
        lines.append({"sku": "B", "qty": 2})  # the caller's own objects: copied
        lines[0]["qty"] = 99
        data["address"]["tags"].append("work")
        for frozen in (event, store.read("O-1")[0].event, store.read_all()[0].event):
            with pytest.raises(ReadOnlyData):
                frozen.data["lines"].append({"sku": "C"})
            with pytest.raises(ReadOnlyData):
                frozen.data["lines"][0]["qty"] = 5
            with pytest.raises(ReadOnlyData):
                frozen.data["address"]["tags"][0] = "x"
            with pytest.raises(ReadOnlyData):
                frozen.data["address"]["tags"] += ["x"]
        expected = {"lines": [{"sku": "A", "qty": 1}],
                    "address": {"city": "Lyon", "tags": ["home"]}}
        for rec in (*store.read("O-1"), *store.read_all()):
            assert rec.event.data == expected
            assert json.loads(json.dumps(rec.event.data)) == expected

    def test_read_ranges(self, store: Any) -> None:
        store.append("O-1", [ev(i) for i in range(1, 6)])
        assert [r.version for r in store.read("O-1", from_version=2, to_version=4)] == [2, 3, 4]
        assert [r.version for r in store.read("O-1", from_version=4)] == [4, 5]
        assert [r.version for r in store.read("O-1", to_version=2)] == [1, 2]
        assert store.read("O-1", from_version=6) == []
        assert store.read("O-1", to_version=0) == []
        with pytest.raises(ValueError):
            store.read("O-1", from_version=0)

    def test_read_all_in_commit_order(self, store: Any) -> None:
        store.append("A", [ev(1, stream="A"), ev(2, stream="A")])
        store.append("B", [ev(1, stream="B")])
        store.append("A", [ev(3, stream="A")])
        every = store.read_all()
        assert [(r.stream_id, r.version, r.position) for r in every] == [
            ("A", 1, 1), ("A", 2, 2), ("B", 1, 3), ("A", 3, 4)]
        assert [r.position for r in store.read_all(after_position=2)] == [3, 4]
        assert [r.position for r in store.read_all(after_position=1, limit=2)] == [2, 3]
        assert store.read_all(after_position=4) == []
        assert store.streams() == ["A", "B"]

    def test_catch_up_by_position(self, store: Any) -> None:
        store.append("A", [ev(i, stream="A") for i in range(1, 6)])
        seen: list[int] = []
        last = catch_up(store, lambda r: seen.append(r.position), batch_size=2)
        assert seen == [1, 2, 3, 4, 5] and last == 5
        store.append("B", [ev(1, stream="B")])
        last = catch_up(store, lambda r: seen.append(r.position), after_position=last)
        assert seen == [1, 2, 3, 4, 5, 6] and last == 6
        assert catch_up(store, lambda r: seen.append(r.position), after_position=6) == 6

    # -- optimistic concurrency ---------------------------------------------------------
    def test_expected_version_zero_means_new(self, store: Any) -> None:
        store.append("O-1", [ev(1)], expected_version=0)
        with pytest.raises(ConcurrencyError) as info:
            store.append("O-1", [ev(2)], expected_version=0)
        err = info.value
        assert (err.stream_id, err.expected, err.actual) == ("O-1", 0, 1)
        assert "'O-1'" in str(err) and "version 1" in str(err) and "version 0" in str(err)
        assert isinstance(err, EdaLabError)
        assert store.version("O-1") == 1

    def test_wrong_expected_version_writes_nothing(self, store: Any) -> None:
        store.append("O-1", [ev(1), ev(2)])
        with pytest.raises(ConcurrencyError):
            store.append("O-1", [ev(3), ev(4)], expected_version=1)
        with pytest.raises(ConcurrencyError):
            store.append("O-1", [ev(3)], expected_version=5)
        assert store.version("O-1") == 2 and store.last_position == 2
        store.append("O-1", [ev(3)], expected_version=2)
        assert store.version("O-1") == 3

    def test_none_skips_the_check(self, store: Any) -> None:
        store.append("O-1", [ev(1)])
        store.append("O-1", [ev(2)], expected_version=None)
        assert store.version("O-1") == 2

    def test_bad_arguments(self, store: Any) -> None:
        with pytest.raises(TypeError):
            store.append("O-1", [ev(1), {"type": "x"}])
        with pytest.raises(TypeError):
            store.append("O-1", ev(1))
        with pytest.raises(ValueError):
            store.append("", [ev(1)])
        with pytest.raises(ValueError):
            store.append("O-1", [ev(1)], expected_version=-1)
        assert store.last_position == 0  # bad input never writes anything

    def test_empty_append(self, store: Any) -> None:
        assert store.append("O-1", []) == []
        assert store.version("O-1") == 0 and store.streams() == []

    # -- idempotency ------------------------------------------------------------------------
    def test_retry_of_a_successful_append_is_a_no_op(self, store: Any) -> None:
        first = store.append("O-1", [ev(1), ev(2)], expected_version=0)
        again = store.append("O-1", [ev(1), ev(2)], expected_version=0)
        assert again == first
        assert store.version("O-1") == 2 and store.last_position == 2

    def test_duplicates_are_dropped_and_the_rest_appended(self, store: Any) -> None:
        store.append("O-1", [ev(1)])
        recorded = store.append("O-1", [ev(1), ev(2)], expected_version=1)
        assert [(r.version, r.event.id) for r in recorded] == [(1, "O-1-e1"), (2, "O-1-e2")]
        assert store.version("O-1") == 2

    def test_mixed_batch_still_checks_the_version(self, store: Any) -> None:
        store.append("O-1", [ev(1), ev(2)])
        with pytest.raises(ConcurrencyError):
            store.append("O-1", [ev(1), ev(3)], expected_version=0)
        assert store.version("O-1") == 2

    def test_same_id_different_content_conflicts(self, store: Any) -> None:
        store.append("O-1", [ev(1)])
        changed = ev(1).evolve(data={"n": 99})
        with pytest.raises(EventIdConflict, match="data"):
            store.append("O-1", [ev(2), changed])
        assert store.version("O-1") == 1  # atomic: ev(2) was not written either
        with pytest.raises(EventIdConflict, match="time"):
            store.append("O-1", [ev(1).evolve(time=T0)])

    def test_same_id_twice_in_one_batch(self, store: Any) -> None:
        recorded = store.append("O-1", [ev(1), ev(1), ev(2)])
        assert [r.version for r in recorded] == [1, 2]
        assert store.version("O-1") == 2
        with pytest.raises(EventIdConflict):
            store.append("O-1", [ev(3), ev(3).evolve(subject="other")])
        assert store.version("O-1") == 2

    def test_a_retry_with_an_id_twice_is_still_a_no_op(self, store: Any) -> None:
        first = store.append("O-1", [ev(1), ev(2)], expected_version=0)
        again = store.append("O-1", [ev(1), ev(1), ev(2)], expected_version=0)
        assert again == first and store.version("O-1") == 2
        assert store.append("O-2", [ev(1), ev(1)], expected_version=0)[0].version == 1
        with pytest.raises(EventIdConflict):
            store.append("O-1", [ev(1), ev(1).evolve(subject="other")], expected_version=0)
        assert store.version("O-1") == 2 and store.last_position == 3

    def test_the_same_id_may_live_in_two_streams(self, store: Any) -> None:
        store.append("A", [ev(1, id="shared")])
        store.append("B", [ev(1, id="shared")])
        assert store.version("A") == store.version("B") == 1

    # -- time, snapshots, upcasting ------------------------------------------------------
    def test_version_at_time(self, store: Any) -> None:
        store.append("O-1", [ev(i) for i in range(1, 5)])
        assert store.version_at("O-1", T0) == 0
        assert store.version_at("O-1", T0 + timedelta(seconds=2)) == 2
        assert store.version_at("O-1", T0 + timedelta(seconds=2.5)) == 2
        plus1 = timezone(timedelta(hours=1))
        assert store.version_at("O-1", (T0 + timedelta(seconds=3)).astimezone(plus1)) == 3
        assert store.version_at("O-1", T0 + timedelta(days=1)) == 4

    def test_snapshots(self, store: Any) -> None:
        assert store.latest_snapshot("O-1") is None
        store.save_snapshot(Snapshot("O-1", 10, {"total": 1.5, "items": [1]}, "Order", T0))
        store.save_snapshot(Snapshot("O-1", 20, {"total": 3.0, "items": [1, 2]}, "Order", T0))
        assert store.latest_snapshot("O-1").version == 20
        snap = store.latest_snapshot("O-1", max_version=19)
        assert (snap.version, snap.state, snap.type, snap.time) == (
            10, {"total": 1.5, "items": [1]}, "Order", T0)
        assert store.latest_snapshot("O-1", max_version=9) is None
        assert store.snapshot_versions("O-1") == [10, 20]
        snap.state["items"].append(99)  # the caller's copy, not the stored one
        assert store.latest_snapshot("O-1", 10).state["items"] == [1]

    def test_upcasters_apply_on_read(self, tmp_path: Path) -> None:
        upcasters = Upcasters()
        upcasters.register("ItemAdded", 1, lambda d: {**d, "currency": "EUR"})
        upcasters.register("ItemAdded", 2, lambda d: {**d, "cents": round(d["price"] * 100)})
        store = self.make_store(tmp_path, upcasters=upcasters)
        store.append("O-1", [ev(1), ev(2, schema_version=2), ev(3, schema_version=3),
                             ev(4, type="OrderPaid")])
        read = store.read("O-1")
        assert [r.event.schema_version for r in read] == [3, 3, 3, 1]
        assert read[0].event.data["currency"] == "EUR"
        assert read[0].event.data["cents"] == 150
        assert "currency" not in read[1].event.data  # v2 data already had its shape
        assert store.read_all()[0].event == read[0].event
        assert read[3].event == ev(4, type="OrderPaid")

    def test_unreadable_versions_fail_clearly(self, tmp_path: Path) -> None:
        upcasters = Upcasters()
        upcasters.register("ItemAdded", 2, lambda d: d)  # current is v3, v1 -> v2 missing
        store = self.make_store(tmp_path, upcasters=upcasters)
        store.append("O-1", [ev(1, schema_version=4)])
        with pytest.raises(SchemaVersionError, match=r"position 1 .*newer program"):
            store.read("O-1")
        store.append("O-2", [ev(1, stream="O-2")])
        with pytest.raises(SchemaVersionError, match=r"no upcaster from v1 to v2"):
            store.read("O-2")

    @settings(max_examples=40, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture,
                                     HealthCheck.differing_executors])
    @given(subject=st.one_of(st.just("O-1"), st.text(max_size=5)),
           sequence=st.one_of(st.none(), st.integers(0, 2**40)),
           correlation_id=st.one_of(st.none(), st.text(max_size=5)),
           causation_id=st.one_of(st.none(), st.text(max_size=5)),
           schema_version=st.integers(1, 3),
           actor=st.one_of(st.none(), st.text(min_size=1, max_size=5).filter(str.strip)),
           dataschema=st.one_of(st.none(), st.text(min_size=1, max_size=5).filter(str.strip)),
           type=st.text(min_size=1, max_size=8).filter(lambda t: not t.isspace()),
           source=st.text(min_size=1, max_size=8).filter(lambda t: not t.isspace()),
           micros=st.integers(-10**15, 10**16))
    def test_any_envelope_survives(self, tmp_path_factory: Any, subject: str,
                                   sequence: int | None, correlation_id: str | None,
                                   causation_id: str | None, schema_version: int,
                                   actor: str | None, dataschema: str | None, type: str,
                                   source: str, micros: int) -> None:
        """Usual or unusual envelope attributes, any text, any time: read back equal."""
        store = self.make_store(tmp_path_factory.mktemp("envelope"))
        event = Event(type, {"n": 1, "text": subject}, subject=subject, source=source,
                      id="e-1", time=datetime(1970, 1, 1, tzinfo=UTC)
                      + timedelta(microseconds=micros), sequence=sequence,
                      correlation_id=correlation_id, causation_id=causation_id,
                      schema_version=schema_version, actor=actor, dataschema=dataschema)
        store.append("O-1", [event, ev(2)])
        back = [r.event for r in store.read("O-1")]
        assert back == [event, ev(2)]
        assert back[0].time == event.time and back[0].size == event.size
        assert [r.event for r in store.read_all()] == back
        assert store.append("O-1", [event]) == store.read("O-1", to_version=1)  # a retry

    # -- properties and concurrency ------------------------------------------------------
    # differing_executors: the same inherited test runs once per backend subclass,
    # which is the point of a contract suite; the test keeps no state on self.
    @settings(max_examples=40, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture,
                                     HealthCheck.differing_executors])
    @given(st.lists(st.tuples(st.sampled_from(["A", "B", "C"]), st.integers(1, 4),
                              st.one_of(st.none(), st.integers(0, 6))), max_size=15))
    def test_behaves_like_the_model(self, tmp_path_factory: Any,
                                    ops: list[tuple[str, int, int | None]]) -> None:
        store = self.make_store(tmp_path_factory.mktemp("model"))
        model: dict[str, list[Event]] = {}
        order: list[tuple[str, int]] = []
        counter = 0
        for stream, size, expected in ops:
            batch = []
            for _ in range(size):
                counter += 1
                batch.append(ev(counter, stream=stream))
            current = len(model.get(stream, []))
            if expected is not None and expected != current:
                with pytest.raises(ConcurrencyError):
                    store.append(stream, batch, expected_version=expected)
                continue
            store.append(stream, batch, expected_version=expected)
            model.setdefault(stream, []).extend(batch)
            order.extend((stream, current + i) for i in range(1, size + 1))
        for stream, events in model.items():
            assert [r.event for r in store.read(stream)] == events
            assert store.version(stream) == len(events)
        every = store.read_all()
        assert [(r.stream_id, r.version) for r in every] == order
        assert [r.position for r in every] == list(range(1, len(order) + 1))
        assert store.streams() == list(model)

    def two_writers_race(self, open_store: Callable[[], Any], rounds: int = 15) -> None:
        """Two threads read the same version, then both append: exactly one wins."""
        setup = open_store()
        setup.append("race", [ev(0, stream="race")])
        outcomes: list[str] = []
        lock = threading.Lock()
        for r in range(1, rounds + 1):
            barrier = threading.Barrier(2)
            outcomes.clear()

            def writer(name: str, r: int = r, barrier: threading.Barrier = barrier) -> None:
                store = open_store()
                seen = store.version("race")
                barrier.wait()
                try:
                    store.append("race", [ev(r, stream="race", id=f"{name}-{r}")],
                                 expected_version=seen)
                    result = "won"
                except ConcurrencyError as exc:
                    assert exc.expected == seen and exc.actual == seen + 1
                    result = "lost"
                with lock:
                    outcomes.append(result)

            threads = [threading.Thread(target=writer, args=(n,)) for n in "ab"]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert sorted(outcomes) == ["lost", "won"]
        events = setup.read("race")
        assert [r.version for r in events] == list(range(1, rounds + 2))
        assert len({r.event.id for r in events}) == rounds + 1

    def test_two_threads_one_store_object(self, store: Any) -> None:
        self.two_writers_race(lambda: store)

    def test_two_threads_retrying_never_lose_an_event(self, store: Any) -> None:
        per_writer = 40
        conflicts: list[int] = []

        def writer(name: str) -> None:
            conflicts.append(append_retrying(store, name, per_writer))

        threads = [threading.Thread(target=writer, args=(n,)) for n in "ab"]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        events = store.read("counter")
        ids = [r.event.id for r in events]
        assert len(ids) == 2 * per_writer == len(set(ids))
        assert [r.version for r in events] == list(range(1, 2 * per_writer + 1))
        for name in "ab":  # each writer's own events stay in its order
            mine = [int(i.split("-")[1]) for i in ids if i.startswith(name)]
            assert mine == list(range(per_writer))
