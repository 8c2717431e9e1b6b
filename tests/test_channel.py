"""The in-memory channel: partitions, consumer groups, order per key, retries, dead letters."""

from __future__ import annotations

from collections import defaultdict
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eda_lab.channel import DeliveryPolicy, Topic, partition_for
from eda_lab.events import Event
from eda_lab.latency import Exponential, Fixed, Uniform
from eda_lab.sim import Simulation

workloads = st.lists(
    st.tuples(st.sampled_from([f"O-{i}" for i in range(8)]), st.floats(0, 5)),
    min_size=1, max_size=60,
)


def emit_workload(sim: Simulation, topic: Topic, workload: list[tuple[str, float]]) -> None:
    """Schedule one "Changed" event per (subject, emit time), numbered by data["n"]."""
    shop = sim.emitter("shop")
    for n, (subject, when) in enumerate(workload):
        sim.at(when, shop.emit, topic, "Changed", subject, {"n": n})


def assert_order_per_key(events: list[Event]) -> None:
    """Events about one subject were handled in the order they were emitted."""
    per_key: dict[str, list[int | None]] = defaultdict(list)
    for event in events:
        per_key[event.subject].append(event.sequence)
    for sequence in per_key.values():
        assert sequence == sorted(sequence), f"out of order: {sequence}"


def build(seed: int, workload: list[tuple[str, float]], *, partitions: int = 3,
          groups: tuple[int, ...] = (1, 2), latency=None) -> tuple[Simulation, dict]:
    """Emit ``workload`` (subject, emit time); groups with the given numbers of members."""
    sim = Simulation(seed=seed)
    topic = sim.channel("bus", partitions=partitions,
                        latency=latency or Exponential(0.3)).topic("orders")
    seen: dict[str, list[Event]] = defaultdict(list)
    for g, members in enumerate(groups):
        for m in range(members):
            sink = sim.sink(f"g{g}-m{m}")
            sink.subscribe(topic, seen[f"g{g}"].append, group=f"g{g}")
    emit_workload(sim, topic, workload)
    sim.run()
    return sim, seen


@settings(max_examples=60, deadline=None)
@given(workloads, st.integers(0, 1000), st.integers(1, 4))
def test_each_group_gets_every_event_exactly_once(workload, seed, partitions) -> None:
    sim, seen = build(seed, workload, partitions=partitions)
    for group in ("g0", "g1"):
        ids = [e.id for e in seen[group]]
        assert sorted(ids) == sorted(e.id for e in sim.channels["bus"].topics["orders"].events())
        assert len(ids) == len(set(ids)) == len(workload)


@settings(max_examples=60, deadline=None)
@given(workloads, st.integers(0, 1000))
def test_order_per_key_is_kept_whatever_the_latency(workload, seed) -> None:
    _sim, seen = build(seed, workload, latency=Uniform(0, 3))
    for group in ("g0", "g1"):
        assert_order_per_key(seen[group])


@settings(max_examples=30, deadline=None)
@given(workloads, st.integers(0, 1000))
def test_the_same_seed_gives_an_identical_trace_frame(workload, seed) -> None:
    first, _ = build(seed, workload)
    second, _ = build(seed, workload)
    assert first.frame().equals(second.frame())


def test_a_different_seed_gives_different_ids_and_latencies() -> None:
    workload = [("O-1", 0.0), ("O-2", 1.0)]
    a, _ = build(1, workload)
    b, _ = build(2, workload)
    assert list(a.frame()["event_id"]) != list(b.frame()["event_id"])


def test_members_of_a_group_share_partitions() -> None:
    workload = [(f"O-{i}", i * 0.1) for i in range(40)]
    sim, _ = build(0, workload, partitions=4, groups=(2,))
    delivered = sim.frame().query("kind == 'deliver'")
    owners = delivered.groupby("partition")["service"].unique()
    for partition, services in owners.items():
        assert list(services) == [f"g0-m{partition % 2}"]
    assert set(delivered["service"]) == {"g0-m0", "g0-m1"}


def test_partition_is_a_stable_hash_of_the_subject() -> None:
    # CRC-32 values written down once: the same in every process and on every machine,
    # unlike Python's hash() of a str (randomised per process by PYTHONHASHSEED)
    expected = {"O-1": 2, "O-2": 0, "O-3": 2, "O-00042": 2, "C-0007": 1}
    assert {subject: partition_for(subject, 4) for subject in expected} == expected
    assert partition_for("O-1", 7) == 4117973306 % 7 == 6
    assert {partition_for(f"O-{i}", 4) for i in range(50)} == {0, 1, 2, 3}


def test_delivery_happens_after_the_latency_in_virtual_time() -> None:
    sim = Simulation(seed=1)
    topic = sim.channel("bus", latency=Fixed(0.5)).topic("t")
    got: list[float] = []
    sim.sink("s").subscribe(topic, lambda e: got.append(sim.now))
    sim.at(2.0, sim.emitter("e").emit, topic, "Happened", "k")
    sim.run(until=2.4)
    assert got == []
    sim.run()
    assert got == [2.5]


@pytest.mark.parametrize("service_time", [None, 0.25])
def test_a_delivery_row_comes_before_the_emits_its_handler_caused(service_time) -> None:
    sim = Simulation(seed=3)
    bus = sim.channel("bus", latency=Fixed(0.5))
    orders, receipts = bus.topic("orders"), bus.topic("receipts")
    billing = sim.sink("billing")
    options = {} if service_time is None else {"service_time": service_time}
    billing.subscribe(orders, lambda e: billing.emit(receipts, "ReceiptSent", e.subject),
                      **options)
    sim.at(1.0, sim.emitter("shop").emit, orders, "OrderPaid", "O-1")
    sim.run()
    rows = sim.frame()[["t", "kind", "service", "type"]].values.tolist()
    t = 1.5 + (service_time or 0.0)
    assert rows == [[1.0, "emit", "shop", "OrderPaid"], [t, "deliver", "billing", "OrderPaid"],
                    [t, "emit", "billing", "ReceiptSent"]]


def test_start_earliest_replays_the_log_to_a_late_subscriber() -> None:
    sim = Simulation()
    topic = sim.channel("bus").topic("t")
    shop = sim.emitter("shop")
    for i in range(3):
        shop.emit(topic, "Happened", f"k{i}")
    late, early = [], []
    sim.sink("late").subscribe(topic, late.append, start="earliest")
    sim.sink("early").subscribe(topic, early.append)
    sim.run()
    assert len(late) == 3 and early == []


def test_a_failing_handler_is_retried_then_dead_lettered_and_order_holds() -> None:
    sim = Simulation(seed=3)
    bus = sim.channel("bus", latency=Fixed(0.1))
    topic = bus.topic("orders")
    handled: list[str] = []

    def fragile(event: Event) -> None:
        if event.data["poison"]:
            raise ValueError("cannot parse the address")
        handled.append(event.subject)

    sink = sim.sink("shipping")
    group = sink.subscribe(topic, fragile, max_deliveries=3, backoff=1.0)
    shop = sim.emitter("shop")
    shop.emit(topic, "OrderPlaced", "A", {"poison": True})
    shop.emit(topic, "OrderPlaced", "A", {"poison": False})
    sim.run()
    frame = sim.frame()
    assert list(frame.loc[frame["kind"] == "retry", "detail"].str.contains("attempt")) == [True] * 2
    assert (frame["kind"] == "dead_letter").sum() == 1
    assert handled == ["A"]  # the second event waited behind the poison one
    assert len(bus.topics["orders.dead_letter"]) == 1
    assert group.lag() == 0 and group.dead_letters == 1
    # backoff doubles: attempts at 0.1, 1.1, 3.1
    assert frame.loc[frame["kind"].isin(["retry", "dead_letter"]), "t"].round(6).tolist() == [
        0.1, 1.1, 3.1]


def test_the_dead_letter_topic_is_part_of_the_policy() -> None:
    sim = Simulation(seed=1)
    bus = sim.channel("bus", latency=Fixed(0.1))
    topic = sim.channel("bus").topic("orders")

    def poisoned(event: Event) -> None:
        raise ValueError("unreadable")

    sim.sink("a").subscribe(topic, poisoned, max_deliveries=1)
    sim.sink("b").subscribe(topic, poisoned, max_deliveries=1, dead_letter="parked.{topic}")
    sim.sink("c").subscribe(topic, poisoned, max_deliveries=1, dead_letter="errors")
    sim.emitter("shop").emit(topic, "OrderPlaced", "A")
    sim.run()
    assert {name: len(t) for name, t in bus.topics.items()} == {
        "orders": 1, "orders.dead_letter": 1, "parked.orders": 1, "errors": 1}


def test_a_sink_that_is_down_receives_after_it_recovers_nothing_lost() -> None:
    sim = Simulation(seed=4)
    topic = sim.channel("bus", latency=Fixed(0.1)).topic("t")
    got: list[tuple[float, str]] = []
    sink = sim.sink("billing")
    sink.subscribe(topic, lambda e: got.append((sim.now, e.subject)))
    sim.outage("billing", 1.0, 5.0)
    shop = sim.emitter("shop")
    for i, when in enumerate([0.0, 2.0, 3.0]):
        sim.at(when, shop.emit, topic, "Happened", f"k{i}")
    sim.run()
    assert [s for _, s in got] == ["k0", "k1", "k2"]
    assert [t for t, _ in got][1:] == [5.0, 5.0]
    kinds = sim.frame()["kind"].tolist()
    assert "deferred" in kinds and "outage" in kinds and "recover" in kinds


def test_bad_configuration_is_refused_with_advice() -> None:
    sim = Simulation()
    with pytest.raises(ValueError, match="at least one partition"):
        sim.channel("bus", partitions=0)
    topic = sim.channel("ok").topic("t")
    with pytest.raises(ValueError, match="earliest"):
        sim.sink("s").subscribe(topic, print, start="middle")
    with pytest.raises(ValueError, match="max_deliveries"):
        DeliveryPolicy(max_deliveries=0)
    with pytest.raises(ValueError, match="backoff"):
        DeliveryPolicy(backoff=-1)
    with pytest.raises(TypeError, match="Uniform"):
        DeliveryPolicy(latency="fast")  # type: ignore[arg-type]
    for template in ("{topic}", "", "{queue}.dlq", None):
        with pytest.raises(ValueError, match="dead_letter must name another topic"):
            DeliveryPolicy(dead_letter=template)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no option retries; it has backoff") as refused:
        sim.sink("t").subscribe(topic, print, retries=3)
    assert "Did you mean" not in str(refused.value)
    with pytest.raises(ValueError, match="Did you mean max_deliveries"):
        sim.sink("u").subscribe(topic, print, max_delivery=3)


def test_one_policy_object_serves_the_group_and_keywords_change_single_fields() -> None:
    sim = Simulation()
    topic = sim.channel("bus", latency=Fixed(0.3)).topic("t")
    policy = DeliveryPolicy(max_deliveries=5, backoff=0.5)
    group = sim.sink("a").subscribe(topic, print, policy=policy)
    assert group.policy is policy and group.latency == Fixed(0.3)  # the channel's latency
    tuned = sim.sink("b").subscribe(topic, print, policy=policy, latency=0.1, start="earliest")
    assert tuned.policy == DeliveryPolicy(latency=Fixed(0.1), start="earliest",
                                          max_deliveries=5, backoff=0.5)
    assert tuned.latency == Fixed(0.1) and policy.latency is None  # the original is unchanged
    assert sim.sink("c").subscribe(topic, print).policy == DeliveryPolicy()
    assert tuned.dead_letter_topic == "t.dead_letter"
    # the group's first subscriber sets the policy; later members share it
    member = sim.sink("a2").subscribe(topic, print, group="a", max_deliveries=1)
    assert member is group and group.policy.max_deliveries == 5


@settings(max_examples=60, deadline=None)
@given(workloads, st.integers(0, 1000),
       st.lists(st.tuples(st.floats(0, 6), st.floats(0.1, 4)), max_size=3),
       st.sets(st.integers(0, 59), max_size=10), st.integers(1, 4))
def test_nothing_is_lost_under_injected_faults(workload, seed, outages, flaky, max_deliveries):
    """Outages of the sink and handlers that fail transiently: every event is either
    handled exactly once or dead-lettered after max_deliveries attempts, and per key
    the handled events stay in order."""
    sim = Simulation(seed=seed)
    bus = sim.channel("bus", partitions=3, latency=Exponential(0.3))
    topic = bus.topic("orders")
    failures_left = {n: 2 for n in flaky}  # these events fail twice, then succeed
    handled: list[Event] = []

    def handler(event: Event) -> None:
        n = event.data["n"]
        if failures_left.get(n, 0) > 0:
            failures_left[n] -= 1
            raise RuntimeError(f"transient failure on event {n}")
        handled.append(event)

    sink = sim.sink("billing")
    group = sink.subscribe(topic, handler, max_deliveries=max_deliveries, backoff=0.5)
    for start, length in outages:
        sim.outage("billing", start, start + length)
    emit_workload(sim, topic, workload)
    sim.run()

    dead = {e.data["n"] for e in bus.topics["orders.dead_letter"].events()} \
        if "orders.dead_letter" in bus.topics else set()
    done = [e.data["n"] for e in handled]
    assert len(done) == len(set(done)), "an event was handled twice"
    assert set(done) | dead == set(range(len(workload))), "an event was lost"
    assert not set(done) & dead
    expected_dead = {n for n in flaky if n < len(workload)} if max_deliveries <= 2 else set()
    assert dead == expected_dead
    assert group.lag() == 0
    assert_order_per_key(handled)


# -- rebalancing ------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), workload=workloads, commit_every=st.integers(1, 5),
       join_at=st.floats(0, 6), leave_at=st.floats(0, 8))
def test_a_rebalance_keeps_order_per_partition_and_repeats_only_uncommitted_events(
        seed: int, workload: list[tuple[str, float]], commit_every: int, join_at: float,
        leave_at: float) -> None:
    sim = Simulation(seed)
    topic = sim.channel("bus", partitions=4, latency=Exponential(0.5)).topic("orders")
    seen: dict[int, list[int]] = defaultdict(list)   # partition -> offsets, handling order

    def handler(event: Event) -> None:
        p = topic.partition_of(event.subject)
        seen[p].append(topic.logs[p].index(event))

    first, second = sim.sink("first"), sim.sink("second")
    group = first.subscribe(topic, handler, group="g", commit_every=commit_every)
    emit_workload(sim, topic, workload)
    sim.at(join_at, group.join, second, handler)
    sim.at(max(leave_at, join_at), group.leave, first)
    sim.run()
    assert sum(len(v) for v in seen.values()) == len(workload) + group.redelivered
    for p, offsets in seen.items():
        # a rebalance steps back to the committed offset, then goes on in order
        for a, b in pairwise(offsets):
            assert b == a + 1 or b <= a, offsets
        assert sorted(set(offsets)) == list(range(len(topic.logs[p])))
        assert offsets[-1] == len(topic.logs[p]) - 1
    repeats = sum(len(v) - len(set(v)) for v in seen.values())
    assert repeats == group.redelivered
    assert group.committed == group.handled or commit_every > 1
    if commit_every == 1:
        assert group.redelivered == 0


def test_a_joining_member_takes_over_at_the_committed_offset() -> None:
    sim = Simulation(1)
    topic = sim.channel("bus", partitions=2, latency=Fixed(0.0)).topic("orders")
    handled: list[tuple[str, int]] = []
    first, second = sim.sink("first"), sim.sink("second")
    subject = next(f"O-{i}" for i in range(50) if topic.partition_of(f"O-{i}") == 1)
    group = first.subscribe(topic, lambda e: handled.append(("first", e.data["n"])),
                            group="g", commit_every=3)
    shop = sim.emitter("shop")
    for n in range(5):
        sim.at(float(n), shop.emit, topic, "Changed", subject, {"n": n})
    sim.at(3.5, group.join, second, lambda e: handled.append(("second", e.data["n"])))
    sim.run()
    # first handled 0..3 and committed after 0, 1, 2; second owns partition 1 from offset 3
    assert handled == [("first", 0), ("first", 1), ("first", 2), ("first", 3),
                       ("second", 3), ("second", 4)]
    assert group.redelivered == 1
    rows = sim.frame()
    assert rows.loc[rows["kind"] == "rebalance", "offset"].tolist() == [3]
    assert (rows["detail"] == "redelivered after a rebalance").sum() == 1


def test_after_a_rebalance_a_retried_event_keeps_the_later_ones_waiting() -> None:
    """The new owner handles the uncommitted events again, in order: when the first of
    them fails and is retried, the ones after it wait for it (they do not overtake)."""
    sim = Simulation(1)
    topic = sim.channel("bus", partitions=1, latency=Fixed(0.0)).topic("orders")
    handled: list[tuple[str, int]] = []
    failed_once: set[int] = set()

    def second_handler(event: Event) -> None:
        n = event.data["n"]
        if n == 2 and n not in failed_once:
            failed_once.add(n)
            raise RuntimeError("first attempt fails")
        handled.append(("second", n))

    first, second = sim.sink("first"), sim.sink("second")
    group = first.subscribe(topic, lambda e: handled.append(("first", e.data["n"])),
                            group="g", commit_every=5, backoff=1.0)
    shop = sim.emitter("shop")
    for n in range(4):
        sim.at(float(n), shop.emit, topic, "Changed", "O-1", {"n": n})
    sim.at(3.5, group.join, second, second_handler)
    sim.at(3.6, group.leave, first)  # partition 0 moves to second at offset 0
    sim.run()
    again = [n for who, n in handled if who == "second"]
    assert again == [0, 1, 2, 3], handled  # 2 failed once, was retried, 3 waited for it
    assert group.handled == [4]


def test_a_groups_latency_and_policy_can_be_replaced() -> None:
    sim = Simulation(1)
    topic = sim.channel("bus", latency=Fixed(1.0)).topic("orders")
    times: list[float] = []
    group = sim.sink("billing").subscribe(topic, lambda e: times.append(sim.now))
    group.latency = Fixed(5.0)
    group.policy = group.policy.but(commit_every=2)
    sim.emitter("shop").emit(topic, "Changed", "O-1")
    sim.run()
    assert times == [5.0] and group.committed == [0] and group.handled == [1]
    with pytest.raises(TypeError, match="DeliveryPolicy"):
        group.policy = "fast"  # type: ignore[assignment]


def test_rebalances_this_model_does_not_simulate_are_refused_by_name() -> None:
    from eda_lab.channel import RebalanceNotModelled

    sim = Simulation(1)
    topic = sim.channel("bus", partitions=2).topic("orders")
    a, b, c = sim.sink("a"), sim.sink("b"), sim.sink("c")
    group = a.subscribe(topic, print, group="g")
    with pytest.raises(ValueError, match="not a member"):
        group.leave(b)
    with pytest.raises(ValueError, match="last member"):
        group.leave(a)
    slow = b.subscribe(topic, print, group="slow", service_time=1.0)
    with pytest.raises(RebalanceNotModelled, match="service time"):
        slow.join(c, print)
    with pytest.raises(ValueError, match="commit_every must be an int >= 1"):
        DeliveryPolicy(commit_every=0)

    def fail(event: Event) -> None:
        raise RuntimeError("boom")

    stuck = c.subscribe(topic, fail, group="stuck", backoff=10.0)
    subject = next(f"O-{i}" for i in range(50) if topic.partition_of(f"O-{i}") == 1)
    sim.emitter("shop").emit(topic, "Changed", subject)
    sim.run(until=5.0)  # the first attempt failed; the retry is due at t=10
    with pytest.raises(RebalanceNotModelled, match=r"partition 1 .* waits for a retry"):
        stuck.join(sim.sink("d"), print)  # partition 1 would move to d
    assert len(stuck.members) == 1


@pytest.mark.parametrize("name", ["", "  ", None, 3])
def test_channels_and_topics_need_a_name(name: object) -> None:
    from eda_lab.errors import InvalidArgument
    from eda_lab.sim import Simulation

    sim = Simulation()
    with pytest.raises(InvalidArgument, match="non-empty name"):
        sim.channel(name)  # type: ignore[arg-type]
    bus = sim.channel("bus")
    with pytest.raises(InvalidArgument, match="non-empty name"):
        bus.topic(name)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="at least one partition"):
        bus.topic("orders", partitions=0)
    with pytest.raises(InvalidArgument, match="at most 10000"):  # not a full memory
        bus.topic("orders", partitions=10**30)
    with pytest.raises(InvalidArgument, match="at most 10000"):
        sim.channel("big", partitions=10**9)
    assert list(sim.channels) == ["bus"] and bus.topics == {}
