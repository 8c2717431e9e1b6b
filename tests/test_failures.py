"""Surviving failures: idempotent consumers, dead letters and redrive, the outbox, scale out."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_channel import assert_order_per_key, emit_workload, workloads

from eda_lab.events import Event
from eda_lab.failures import (
    CRASH_POINTS,
    DESIGNS,
    BillingDatabase,
    CardBilling,
    IdempotentConsumer,
    KeyParking,
    LostAcks,
    OrderDatabase,
    OrderService,
    PaymentProvider,
    applied_order,
    backlog_over_time,
    charges_per_order,
    dead_letter_table,
    dead_letters,
    duplicate_summary,
    out_of_order,
    parse_quantity_words,
    redrive,
    run_scale_out,
    saturation_members,
    scale_out_grid,
    scale_out_summary,
    scale_out_table,
)
from eda_lab.latency import Exponential, Fixed, Uniform
from eda_lab.lessons import check, exercises
from eda_lab.lessons.n05_surviving_failures import (
    consistency,
    crash_point_table,
    run_billing,
    run_card_billing,
    run_dual_write,
    run_poison,
    scale_out_panel,
)
from eda_lab.sim import Simulation

# -- 1. idempotent consumers ---------------------------------------------------------


def test_an_idempotent_consumer_skips_a_repeat_and_records_it() -> None:
    sim = Simulation()
    sink = sim.sink("billing")
    applied: list[str] = []
    consumer = IdempotentConsumer(lambda e: applied.append(e.id), sink)
    event = Event("OrderPlaced", {}, subject="O-1", id="e1")
    consumer(event)
    consumer(event)
    assert applied == ["e1"] and consumer.skipped == 1
    rows = sim.frame()
    assert rows["kind"].tolist() == ["duplicate"] and rows["outcome"].tolist() == ["skipped"]


def test_a_handler_that_raised_is_not_remembered_so_the_retry_runs() -> None:
    calls: list[str] = []

    def fragile(event: Event) -> None:
        calls.append(event.id)
        if len(calls) == 1:
            raise RuntimeError("payment provider unreachable")

    consumer = IdempotentConsumer(fragile)
    event = Event("OrderPlaced", {}, id="e1")
    with pytest.raises(RuntimeError):
        consumer(event)
    consumer(event)
    consumer(event)
    assert calls == ["e1", "e1"] and consumer.handled_ids == {"e1"}


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.sampled_from(["ok", "before", "after"])),
                max_size=40))
def test_an_idempotent_consumer_never_applies_an_event_twice(pattern) -> None:
    """Any redelivery pattern: each delivery of event i either succeeds, fails before the
    effect (the handler raises), or fails after it (the ack is lost, outside the wrapper).
    The effect happens at most once per id, and exactly once for every id that had a
    delivery whose handler completed."""
    applied: Counter[str] = Counter()
    fail_before: set[int] = set()

    def effect(event: Event) -> None:
        if event.data["n"] in fail_before:
            raise RuntimeError("failed before the effect")
        applied[event.id] += 1

    consumer = IdempotentConsumer(effect)
    events = [Event("Charged", {"n": i}, id=f"e{i}") for i in range(6)]
    completed: set[str] = set()
    for i, outcome in pattern:
        fail_before.discard(i)
        if outcome == "before":
            fail_before.add(i)
        try:
            consumer(events[i])
        except RuntimeError:
            continue
        completed.add(events[i].id)  # "after": the handler completed, the ack is lost
    assert all(count == 1 for count in applied.values())
    assert set(applied) == completed


def test_lost_acks_refuses_a_rate_that_would_never_commit() -> None:
    with pytest.raises(ValueError, match="every acknowledgement"):
        LostAcks(print, rate=1.0)


def test_without_idempotence_each_lost_ack_charges_a_card_again() -> None:
    run = run_billing(seed=7, n_orders=20, ack_loss=0.3)
    summary = duplicate_summary(run.frame)
    assert run.acks.lost > 0
    assert summary["charges"] == len(run.charges) == 20 + run.acks.lost
    assert summary["extra_charges"] == run.acks.lost
    assert summary["double_charged"] >= 1 and summary["skipped"] == 0


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 500), st.integers(1, 15), st.floats(0.0, 0.6))
def test_with_idempotence_every_order_is_charged_exactly_once(seed, n, loss) -> None:
    naive = run_billing(seed=seed, n_orders=n, ack_loss=loss)
    safe = run_billing(seed=seed, n_orders=n, ack_loss=loss, idempotent=True)
    table = charges_per_order(safe.frame)
    assert len(table) == n and (table["charged"] == 1).all()
    assert sorted(s for s, _ in safe.charges) == sorted(set(s for s, _ in naive.charges))
    # the same seed loses the same acks: every lost ack is followed by a redelivery
    # (skipped here, paid again by the naive consumer) unless it was the last attempt
    # allowed, which sends the (already charged) order to the dead-letter topic
    assert safe.acks.lost == naive.acks.lost
    assert safe.acks.lost == table["skipped"].sum() + safe.group.dead_letters
    assert duplicate_summary(naive.frame)["extra_charges"] == (
        naive.acks.lost - naive.group.dead_letters)


# -- 1b. an external effect: the card charge, the crash and the idempotency key ----------


def _order_event(order_id: str = "O-1", total: float = 10.0, event_id: str = "e1") -> Event:
    return Event("OrderPlaced", {"order_id": order_id, "customer_id": "C-1", "total": total},
                 subject=order_id, source="shop", id=event_id)


def test_the_provider_charges_once_per_idempotency_key_and_every_time_without_one() -> None:
    sim = Simulation(seed=1)
    provider = PaymentProvider(sim)
    event = _order_event()
    first = provider.charge(event, 10.0, idempotency_key="k1")
    assert provider.charge(event, 10.0, idempotency_key="k1") == first
    assert provider.charge(event, 10.0) != provider.charge(event, 10.0)
    assert provider.charges == [("O-1", 10.0)] * 3 and provider.deduplicated == 1
    kinds = list(sim.frame()["kind"])
    assert kinds == ["effect", "duplicate", "effect", "effect"]


def test_the_processed_id_and_the_invoice_commit_together_or_not_at_all() -> None:
    db = BillingDatabase()
    db.record("e1", "O-1", "ch-00001", 10.0)
    assert db.seen("e1") and not db.seen("e2")
    with pytest.raises(Exception, match="UNIQUE"):
        db.record("e1", "O-1", "ch-00002", 10.0)  # the same id twice: both rows refused
    db.conn.execute("ROLLBACK")
    assert list(db.invoices()["charge_id"]) == ["ch-00001"]


def test_a_crash_between_charge_and_record_charges_again_despite_the_table() -> None:
    sim = Simulation(seed=1)
    sink = sim.sink("billing")
    provider, db = PaymentProvider(sim), BillingDatabase()
    billing = CardBilling(sink, provider, db, idempotency_keys=False, crash_rate=1.0)
    event = _order_event()
    with pytest.raises(RuntimeError, match="before recording"):
        billing(event)
    assert not db.seen(event.id) and len(provider.charges) == 1
    billing(event)  # the redelivery: the table does not know it, the card is charged again
    billing(event)  # a third delivery after the commit is skipped by the table
    assert len(provider.charges) == 2 and db.seen(event.id) and len(db.invoices()) == 1
    with pytest.raises(ValueError, match="crash_rate"):
        CardBilling(sink, provider, db, idempotency_keys=True, crash_rate=1.5)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 500), st.integers(1, 12), st.floats(0.0, 1.0))
def test_with_an_idempotency_key_no_crash_double_charges(seed, n, rate) -> None:
    table_only = run_card_billing(seed, n, crash_rate=rate)
    keyed = run_card_billing(seed, n, crash_rate=rate, idempotency_keys=True)
    assert table_only.handler.crashes == keyed.handler.crashes  # same seed, same crashes
    plain, safe = duplicate_summary(table_only.frame), duplicate_summary(keyed.frame)
    assert plain["double_charged"] == table_only.handler.crashes  # each crash: one more
    assert safe["double_charged"] == 0 and len(keyed.provider.charges) == n
    assert keyed.provider.deduplicated == keyed.handler.crashes
    for run in (table_only, keyed):  # the local effect is exactly once either way
        assert sorted(run.db.invoices()["order_id"]) == sorted(
            run.frame.query("kind == 'emit'")["subject"])


def test_a_crash_rate_of_one_crashes_every_order_once() -> None:
    run = run_card_billing(3, 12, crash_rate=1.0)
    assert run.handler.crashes == 12
    assert duplicate_summary(run.frame)["double_charged"] == 12


# -- 2. poison messages, dead letters, redrive ----------------------------------------


def test_a_poison_message_is_retried_then_dead_lettered_and_the_rest_moves_on() -> None:
    run = run_poison(seed=7, n_items=20, poison=(3, 11), max_deliveries=3, backoff=1.0)
    frame = run.frame
    dead = dead_letter_table(frame)
    assert len(dead) == 2 and set(dead["subject"]) == set(run.poisoned)
    assert dead["detail"].str.contains("invalid literal").all()
    assert (frame["kind"] == "retry").sum() == 2 * 2  # two retries each, then dead
    assert len(run.bus.topics["items.dead_letter"]) == 2
    assert len(run.keeper.handled) == 18 and run.group.lag() == 0
    assert run.keeper.reserved != run.expected


def test_dead_letters_are_listed_in_the_order_they_were_dead_lettered() -> None:
    run = run_poison(seed=7, n_items=30, poison=2)
    assert run.bus.topics["items.dead_letter"].partitions > 1
    listed = [event.id for event in dead_letters(run.bus, "items")]
    table = dead_letter_table(run.frame)
    assert listed == list(table["event_id"]) and table["t"].is_monotonic_increasing
    by_partition = [event.id for event in run.bus.topics["items.dead_letter"].events()]
    assert sorted(listed) == sorted(by_partition) and listed != by_partition  # this seed
    assert dead_letters(run.bus, "orders") == []


def test_fix_then_redrive_loses_nothing_and_idempotent_groups_skip_the_repeat() -> None:
    run = run_poison(seed=3, n_items=25, poison=(0, 5, 9))
    run.keeper.parse_quantity = parse_quantity_words
    redrive(run.bus, "items")
    run.sim.run()
    assert run.keeper.reserved == run.expected
    assert len(run.keeper.handled) == 25 == len(set(run.keeper.handled))
    assert run.analytics.skipped == 3 and len(run.analytics.handled_ids) == 25


def test_redrive_without_a_fix_does_not_circle_forever() -> None:
    run = run_poison(seed=3, n_items=10, poison=(2,))
    redrive(run.bus, "items", max_times=2)
    run.sim.run()
    frame = run.frame
    assert (frame["kind"] == "dead_letter").sum() == 3  # first time + two redrives
    skipped = frame[(frame["kind"] == "redrive") & (frame["outcome"] == "skipped")]
    assert len(skipped) == 1 and "fix the handler" in skipped["detail"].iloc[0]


def test_a_number_of_poison_messages_is_placed_by_the_seed() -> None:
    first, again = run_poison(seed=5, n_items=12, poison=3), run_poison(seed=5, n_items=12,
                                                                         poison=3)
    assert len(first.poisoned) == 3 and first.poisoned == again.poisoned
    assert len(dead_letter_table(first.frame)) == 3
    with pytest.raises(ValueError, match="later item of the same order"):
        run_poison(n_items=2, poison=3)


def test_parse_quantity_words() -> None:
    assert [parse_quantity_words(v) for v in (3, "4", "three", " Ten ")] == [3, 4, 3, 10]
    with pytest.raises(ValueError):
        parse_quantity_words("a dozen")


def test_out_of_order_counts_events_applied_after_a_later_one_of_their_key() -> None:
    events = [Event("E", {}, subject=k, source="s", id=f"e{n}", sequence=n)
              for n, k in enumerate("AABA")]
    assert out_of_order(events) == 0
    shuffled = [events[1], events[2], events[0], events[3]]
    assert out_of_order(shuffled) == 1
    table = applied_order(shuffled, key="A")
    assert list(table["emitted_as"]) == [1, 0, 3]
    assert list(table["overtaken"]) == [False, True, False]


@pytest.mark.parametrize(("seed", "n_items", "poison"), [(7, 30, 2), (3, 24, 3), (5, 40, 4)])
def test_parking_the_event_breaks_key_order_and_parking_the_key_keeps_it(
        seed, n_items, poison) -> None:
    result = {}
    for park in ("event", "key"):
        run = run_poison(seed, n_items, poison=poison, park=park)
        assert out_of_order(run.keeper.applied) == 0  # nothing is out of order before
        run.keeper.parse_quantity = parse_quantity_words
        redrive(run.bus, "items")
        run.sim.run()
        assert run.keeper.reserved == run.expected
        assert sorted(run.keeper.handled) == sorted(set(run.keeper.handled))
        assert len(run.keeper.handled) == n_items
        result[park] = (out_of_order(run.keeper.applied), run)
    # every malformed event has a later event of its order, which overtakes it
    assert result["event"][0] == poison
    assert result["key"][0] == 0
    parking = result["key"][1].parking
    assert parking is not None and parking.held > 0
    assert (result["key"][1].frame["kind"] == "hold").sum() == parking.held


def test_key_parking_holds_only_the_parked_key() -> None:
    sim = Simulation(seed=1)
    topic = sim.channel("bus", partitions=1).topic("t")
    shop, sink = sim.emitter("shop"), sim.sink("c")
    applied: list[str] = []

    def handler(event: Event) -> None:
        if event.data["bad"]:
            raise ValueError("bad payload")
        applied.append(f"{event.subject}{event.data['n']}")

    parking = KeyParking(handler, sink, topic)
    sink.subscribe(topic, parking, max_deliveries=1)
    for n, (key, bad) in enumerate([("A", True), ("B", False), ("A", False), ("B", False)]):
        sim.at(n, shop.emit, topic, "E", key, {"n": n, "bad": bad})
    sim.run()
    assert applied == ["B1", "B3"] and parking.held == 1
    assert parking.parked("A") == [e.id for e in dead_letters(sim.channels["bus"], "t")]
    handler_fixed: list[str] = []
    parking.handler = lambda event: handler_fixed.append(f"{event.subject}{event.data['n']}")
    redrive(sim.channels["bus"], "t")
    sim.run()
    assert handler_fixed == ["A0", "A2"] and parking.parked("A") == []


# -- 3. the dual write and the outbox --------------------------------------------------


def test_the_crash_point_table_shows_lost_and_phantom_events_and_a_safe_outbox() -> None:
    table = crash_point_table(seed=7)
    verdicts = table.groupby("design")["verdict"].apply(set).to_dict()
    assert "lost event" in verdicts["db_first"]
    assert "phantom event" in verdicts["publish_first"]
    assert verdicts["outbox"] == {"consistent", "duplicate, skipped"}
    assert len(table) == sum(len(s) + 1 for s in CRASH_POINTS.values()) + 1


@pytest.mark.parametrize("design", ["db_first", "publish_first"])
def test_a_crash_between_the_two_writes_makes_them_disagree(design) -> None:
    run = run_dual_write(design, seed=1, n_orders=6, crashes={"O-00002": 1, "O-00004": 1},
                         relay_crashes=[])
    c = consistency(run)
    wrong = "lost" if design == "db_first" else "phantom"
    assert c[wrong] == 2 and c["lost" if wrong == "phantom" else "phantom"] == 0


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 1000), st.integers(1, 12),
       st.dictionaries(st.integers(1, 12), st.integers(0, 3)),
       st.sets(st.integers(1, 12)))
def test_the_outbox_never_loses_or_invents_an_event(seed, n, crash_at, relay_crashes) -> None:
    """Any crash point of the service (before, inside or after its transaction) and any
    relay crashes between publishing and marking: the events the consumers hear of are
    exactly the orders the database holds."""
    crashes = {f"O-{k:05d}": steps for k, steps in crash_at.items() if k <= n}
    run = run_dual_write("outbox", seed=seed, n_orders=n, crashes=crashes,
                         relay_crashes=relay_crashes)
    c = consistency(run)
    committed = {f"O-{k:05d}" for k in range(1, n + 1)} - {
        o for o, steps in crashes.items() if steps < len(CRASH_POINTS["outbox"])}
    assert set(run.db.order_ids()) == committed
    assert c["lost"] == 0 and c["phantom"] == 0
    assert set(run.received) == committed
    assert len(run.shipping.handled_ids) == len(committed)  # each applied exactly once
    assert run.db.pending() == []


def test_an_outbox_crash_rolls_back_both_rows() -> None:
    sim = Simulation()
    topic = sim.channel("bus").topic("orders")
    db = OrderDatabase()
    service = OrderService(sim, topic, db, design="outbox")
    service.place("O-1", "C-1", 10.0, crash_after=2)
    assert db.order_ids() == [] and db.outbox_size() == 0
    service.place("O-2", "C-1", 12.0)
    assert db.order_ids() == ["O-2"] and [e.subject for _, e in db.pending()] == ["O-2"]
    assert len(topic) == 0  # the service itself publishes nothing
    assert sim.frame()["kind"].tolist() == [
        "db_write", "outbox", "crash", "db_write", "outbox", "commit"]
    assert "rolled back" in sim.frame()["detail"].iloc[2]


def test_bad_designs_and_crash_points_are_refused() -> None:
    sim = Simulation()
    topic = sim.channel("bus").topic("orders")
    with pytest.raises(ValueError, match="outbox"):
        OrderService(sim, topic, OrderDatabase(), design="two_phase")
    service = OrderService(sim, topic, OrderDatabase())
    with pytest.raises(ValueError, match="crash_after"):
        service.place("O-1", "C-1", 1.0, crash_after=-1)
    with pytest.raises(ValueError, match="crash_rate"):
        run_dual_write("outbox", crash_rate=1.5)
    assert set(DESIGNS) == set(CRASH_POINTS)


# -- 4. scale out: the channel's service time ------------------------------------------


def test_a_member_handles_one_event_at_a_time() -> None:
    sim = Simulation()
    topic = sim.channel("bus", partitions=2).topic("orders")
    got: list[tuple[float, str]] = []
    sim.sink("w1").subscribe(topic, lambda e: got.append((sim.now, e.subject)),
                             group="g", service_time=Fixed(1.0))
    shop = sim.emitter("shop")
    for subject in ["a", "b", "c"]:
        shop.emit(topic, "Happened", subject)
    sim.run()
    assert [t for t, _ in got] == [1.0, 2.0, 3.0]
    latencies = sim.frame().query("kind == 'deliver'")["latency"].tolist()
    assert latencies == [1.0, 2.0, 3.0]  # queueing counts in the latency


def test_two_members_work_in_parallel_on_two_partitions() -> None:
    sim = Simulation()
    topic = sim.channel("bus", partitions=2).topic("orders")
    for name in ("w1", "w2"):
        sim.sink(name).subscribe(topic, lambda e: None, group="g", service_time=1.0)
    shop = sim.emitter("shop")
    subjects = [s for s in (f"k{i}" for i in range(20)) if topic.partition_of(s) == 0][:2] + \
        [s for s in (f"k{i}" for i in range(20)) if topic.partition_of(s) == 1][:2]
    for subject in subjects:
        shop.emit(topic, "Happened", subject)
    sim.run()
    done = sim.frame().query("kind == 'deliver'")
    assert sorted(done["t"].tolist()) == [1.0, 1.0, 2.0, 2.0]
    assert done.groupby("service").size().to_dict() == {"w1": 2, "w2": 2}




@settings(max_examples=60, deadline=None)
@given(workloads, st.integers(0, 1000), st.integers(1, 4), st.integers(1, 5),
       st.sampled_from([Fixed(0.3), Uniform(0.0, 0.5), Exponential(0.2)]),
       st.sets(st.integers(0, 49), max_size=6),
       st.lists(st.tuples(st.floats(0, 6), st.floats(0.1, 3)), max_size=2))
def test_with_service_time_every_event_is_handled_once_per_group_in_key_order(
        workload, seed, partitions, members, service, flaky, outages) -> None:
    sim = Simulation(seed=seed)
    topic = sim.channel("bus", partitions=partitions, latency=Exponential(0.3)).topic("t")
    seen: dict[str, list[Event]] = defaultdict(list)
    failures_left = {n: 1 for n in flaky}

    def handler_for(group: str):
        def handle(event: Event) -> None:
            n = event.data["n"]
            if group == "slow" and failures_left.get(n, 0) > 0:
                failures_left[n] -= 1
                raise RuntimeError("transient")
            seen[group].append(event)
        return handle

    for m in range(members):
        sim.sink(f"slow-{m}").subscribe(topic, handler_for("slow"), group="slow",
                                        service_time=service, backoff=0.5)
    sim.sink("fast").subscribe(topic, handler_for("fast"))
    for start, length in outages:
        sim.outage("slow-0", start, start + length)
    emit_workload(sim, topic, workload)
    sim.run()
    for group in ("slow", "fast"):
        ns = [e.data["n"] for e in seen[group]]
        assert sorted(ns) == list(range(len(workload))), f"{group}: lost or repeated"
        assert_order_per_key(seen[group])
    assert all(g.lag() == 0 for g in topic.groups.values())
    assert "t.dead_letter" not in sim.channels["bus"].topics


def test_more_members_help_up_to_the_partition_count_then_sit_idle() -> None:
    table = scale_out_table(partitions=4, max_members=6, n_events=120, rate=40.0,
                            service_time=0.2)
    throughput = table["throughput"].tolist()
    assert throughput[3] == max(throughput) > throughput[2] >= throughput[0]
    assert throughput[3] == throughput[4] == throughput[5]  # same assignment, same run
    assert table["idle_members"].tolist() == [0, 0, 0, 0, 1, 2]
    assert table["max_backlog"].iloc[3] < table["max_backlog"].iloc[0]


@pytest.mark.parametrize("partitions", [2, 3, 6])
def test_above_the_cap_throughput_saturates_at_the_partition_count(partitions) -> None:
    grid = scale_out_grid([partitions, partitions + 1], max_members=partitions + 3,
                          n_events=150, rate=60.0, service_time=0.2)
    for p in (partitions, partitions + 1):
        table = grid[grid["partitions"] == p]
        assert saturation_members(table) == p
        assert (table["cap"] == p / 0.2).all()
        assert table["throughput"].max() <= p / 0.2  # never above the cap
    with pytest.raises(ValueError, match="one partition count"):
        saturation_members(grid)
    with pytest.raises(ValueError, match="empty"):
        scale_out_grid([])


def test_below_the_cap_the_arrival_rate_makes_the_plateau() -> None:
    table = scale_out_table(partitions=8, max_members=8, n_events=150, rate=8.0,
                            service_time=0.2)  # cap 40/s, arrivals 8/s
    assert saturation_members(table) < 8
    emits = run_scale_out(members=8, partitions=8, n_events=150, rate=8.0).frame.query(
        "kind == 'emit'")["t"]
    arrivals = (len(emits) - 1) / (emits.max() - emits.min())  # the rate seed 7 drew
    assert table["throughput"].max() <= arrivals * 1.05 < 40 / 2  # the arrivals, not the cap


def test_scale_out_summary_and_backlog_come_from_the_trace() -> None:
    run = run_scale_out(members=2, partitions=2, n_events=30, rate=100.0,
                        service_time=0.1, latency=0.0)
    frame = run.frame
    summary = scale_out_summary(frame, members=2)
    assert run.summary() == summary and summary["idle_members"] == 0
    assert (run.members, run.partitions, run.group.name) == (2, 2, "fulfilment")
    assert summary["handled"] == 30 and summary["busy_members"] == 2
    backlog = backlog_over_time(frame)
    assert backlog["backlog"].iloc[-1] == 0 and backlog["backlog"].max() == \
        summary["max_backlog"]
    assert backlog["t"].is_monotonic_increasing
    with pytest.raises(ValueError, match="at least one member"):
        run_scale_out(members=0)


# -- exercises ----------------------------------------------------------------------


def test_the_exercises_are_registered() -> None:
    assert {"05.1", "05.2", "05.3", "05.4", "05.5", "05.6"} <= set(exercises())
    assert check("05.4", "outbox", quiet=True) and not check("05.4", "db_first", quiet=True)


def test_exercise_05_3_runs_the_learners_charge_step_under_fault_schedules() -> None:
    def with_key(event, provider):
        return provider.charge(event, float(event.data["total"]),
                               idempotency_key=f"charge-{event.id}")

    def without_key(event, provider):
        return provider.charge(event, float(event.data["total"]))

    def shared_key(event, provider):
        return provider.charge(event, float(event.data["total"]), idempotency_key="k")

    def broken(event, provider):
        return provider.charge(event)

    assert "05.3" in exercises()
    passed = check("05.3", with_key, quiet=True)
    assert passed and passed.schedules is not None and passed.schedules["run"] == 50
    result = check("05.3", without_key, quiet=True)
    assert not result and result.schedules is not None
    assert result.schedules["invariant"] == "charged-once"
    assert "crashes" in result.message and "idempotency key" in result.message
    assert f"replay_counterexample('05.3', seed={result.schedules['seed']})" in result.message
    result = check("05.3", shared_key, quiet=True)
    assert not result and "charged 0 times" in result.message
    result = check("05.3", broken, quiet=True)
    assert not result and "TypeError" in result.message
    result = check("05.3", 42, quiet=True)
    assert not result and "the function itself" in result.message


# -- charts -------------------------------------------------------------------------


def test_scale_out_and_backlog_charts_plot_the_tables() -> None:
    import pandas as pd

    from eda_lab import charts

    table = scale_out_table(partitions=3, max_members=4, n_events=60, rate=30.0)
    spec = charts.scale_out_chart(table).to_dict()
    assert len(spec["hconcat"]) == 2
    values = next(iter(spec["datasets"].values()))
    assert [row["members"] for row in values] == [1, 2, 3, 4]
    rules = [v for vs in spec["datasets"].values() for v in vs if "label" in v]
    assert rules and rules[0]["members"] == 3

    grid = scale_out_grid([2, 3], max_members=4, n_events=60, rate=30.0)
    spec = charts.partition_cap_chart(grid, rate=30.0).to_dict()
    assert len(spec["layer"]) == 4
    rows = [v for vs in spec["datasets"].values() for v in vs]
    caps = sorted(v["cap"] for v in rows if set(v) == {"partitions", "cap"})
    assert caps == [10.0, 15.0]
    assert {v["partitions"] for v in rows if "throughput" in v} == {"2 partitions",
                                                                    "3 partitions"}

    series = []
    for members in (1, 3):
        backlog = backlog_over_time(run_scale_out(members=members, partitions=3,
                                                  n_events=60, rate=30.0).frame)
        series.append(backlog.assign(members=members))
    spec = charts.backlog_chart(pd.concat(series), by="members", bins=50).to_dict()
    rows = next(iter(spec["datasets"].values()))
    assert {row["members"] for row in rows} == {1, 3}
    assert len(rows) <= 2 * 51 and spec["encoding"]["color"]["field"] == "members"


def test_the_scale_out_panel_redraws_when_a_slider_moves() -> None:
    panel = scale_out_panel(members=1, partitions=2, n_events=40, rate=30.0)
    assert panel.redraws == 1 and panel.result[0] == 1
    panel.controls["members"].value = 3
    assert panel.redraws == 2
    members, partitions, frame = panel.result
    assert (members, partitions) == (3, 2)
    summary = scale_out_summary(frame, members=members)
    assert summary["busy_members"] == 2 and summary["idle_members"] == 1
    assert len(panel.output.outputs) == 2
