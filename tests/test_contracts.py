"""Event contracts: compatibility rules, the registry, readers, upcasting at the boundary."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eda_lab.contracts import (
    BoundaryUpcaster,
    BrokenContract,
    IncompatibleSchema,
    Schema,
    SchemaRegistry,
    StrictReader,
    TolerantReader,
    UnknownSchema,
    broken_consumers,
    compatibility_table,
    compatible,
    contract_summary,
    run_contract,
    to_integration,
)
from eda_lab.errors import InvalidArgument
from eda_lab.events import Event
from eda_lab.exercises import check
from eda_lab.lessons.n07_event_contracts import (
    CHANGES,
    V1,
    change_matrix,
    domain_events,
    mixed_stream,
    orders,
    readers,
    run_change,
    shipping_upcasters,
    translate,
)

V2 = CHANGES["rename postcode"][0]


def test_the_four_changes_follow_the_documented_rules() -> None:
    table = {row["change"]: (row["backward"], row["forward"]) for row in
             compatibility_table(V1, {name: new for name, (new, _) in CHANGES.items()})}
    assert table == {"add optional field": (True, True), "rename postcode": (False, False),
                     "remove required field": (True, False),
                     "add required field": (False, True)}


names = st.sampled_from(["a", "b", "c", "d", "e"])


@given(old_required=st.sets(names), old_optional=st.sets(names),
       new_required=st.sets(names), new_optional=st.sets(names))
def test_a_rule_holds_exactly_when_a_tolerant_reader_can_read(
        old_required: set[str], old_optional: set[str], new_required: set[str],
        new_optional: set[str]) -> None:
    """backward: a tolerant reader of the new schema reads a minimal old event; forward: a
    tolerant reader of the old schema reads a minimal new event."""
    old = Schema("S", 1, tuple(sorted(old_required)),
                 {n: 0 for n in old_optional - old_required})
    new = Schema("S", 2, tuple(sorted(new_required)),
                 {n: 0 for n in new_optional - new_required})

    def reads(reader_schema: Schema, written: Schema) -> bool:
        event = Event("S", {name: 1 for name in written.required}, schema_version=1)
        reader = TolerantReader(sorted(reader_schema.fields),
                                defaults=reader_schema.optional)
        try:
            reader.read(event)
        except BrokenContract:
            return False
        return True

    assert (not compatible(new, old, mode="backward")) == reads(new, old)
    assert (not compatible(new, old, mode="forward")) == reads(old, new)
    assert (not compatible(new, old, mode="full")) == (reads(new, old) and reads(old, new))
    assert compatible(new, old, mode="none") == []


postcodes = st.text(alphabet="0123456789", min_size=4, max_size=6)


@given(postcode=postcodes, total=st.floats(0, 1000, allow_nan=False),
       extra=st.text(min_size=1, max_size=8))
def test_upcast_then_read_equals_reading_the_new_version(postcode: str, total: float,
                                                         extra: str) -> None:
    v1 = {"order_id": "O-1", "customer_id": "C-1", "street": extra, "city": "X",
          "postcode": postcode, "total": total}
    old = Event("OrderShipped", v1, "O-1", schema_version=1, dataschema=V1.uri)
    new = Event("OrderShipped", CHANGES["rename postcode"][1](dict(v1)), "O-1",
                schema_version=2, dataschema=V2.uri)
    needs = ("street", "postal_code", "total")
    boundary = BoundaryUpcaster(shipping_upcasters(), StrictReader(V2, needs))
    assert boundary.read(old) == StrictReader(V2, needs).read(new)
    assert boundary.read(new) == StrictReader(V2, needs).read(new)
    assert boundary.upcast == 1  # only the v1 event was upcast
    assert dict(old.data) == v1  # nothing stored changed


def test_the_registry_refuses_an_incompatible_version_and_keeps_what_it_had() -> None:
    registry = SchemaRegistry("forward")
    assert registry.register(V1) == "urn:eda-lab:OrderShipped:1"
    with pytest.raises(IncompatibleSchema, match="readers of v1 need 'postcode'"):
        registry.register(V2)
    assert registry.versions("OrderShipped") == [V1]
    assert registry.register(Schema("OrderShipped", 2, V1.required, {"carrier": ""})) == (
        "urn:eda-lab:OrderShipped:2")
    with pytest.raises(InvalidArgument, match="next version is 3"):
        registry.register(Schema("OrderShipped", 5, V1.required))
    with pytest.raises(InvalidArgument, match="unknown compatibility mode"):
        SchemaRegistry("sideways")  # type: ignore[arg-type]


def test_the_registry_finds_an_events_schema_by_its_dataschema() -> None:
    registry = SchemaRegistry("backward")
    registry.register(V1)
    event = Event("OrderShipped", {}, dataschema=V1.uri)
    assert registry.schema_of(event) is V1
    with pytest.raises(UnknownSchema, match="urn:x"):
        registry.schema_of(event.evolve(dataschema="urn:x"))
    with pytest.raises(UnknownSchema):
        registry.latest("Nope")


def test_a_strict_reader_refuses_unknown_fields_a_tolerant_one_ignores_them() -> None:
    data = {name: "x" for name in V1.required} | {"carrier": "DHL"}
    event = Event("OrderShipped", data)
    with pytest.raises(BrokenContract, match="unknown fields \\['carrier'\\]"):
        StrictReader(V1, ("total",)).read(event)
    assert TolerantReader(("total",)).read(event) == {"total": "x"}
    reader = TolerantReader(("total", "currency"), defaults={"currency": "EUR"})
    assert reader.read(event) == {"total": "x", "currency": "EUR"}
    with pytest.raises(BrokenContract, match="'weight'"):
        TolerantReader(("weight",)).read(event)


def test_an_alias_reads_a_renamed_field() -> None:
    event = Event("OrderShipped", {"postal_code": "10115"})
    assert TolerantReader(("postcode",), aliases={"postcode": ["postal_code"]}).read(
        event) == {"postcode": "10115"}


def test_the_translation_keeps_a_private_rename_private() -> None:
    subject, data = orders(3, seed=2)[1]
    public = to_integration(domain_events(subject, data), V1, translate=translate)
    renamed = to_integration(domain_events(subject, data, postcode_field="postal_code"),
                             V1, translate=translate)
    assert public == renamed and set(public) == V1.fields
    assert "picker" not in public
    with pytest.raises(BrokenContract, match="lacks \\['city'\\]"):
        to_integration(domain_events(subject, data), V1,
                       translate=lambda merged: {k: v for k, v in translate(merged).items()
                                                 if k != "city"})


@pytest.mark.parametrize(("n_orders", "switch_at"), [(12, 4), (20, 10)])
def test_a_breaking_rename_breaks_every_strict_consumer_from_the_switch_on(
        n_orders: int, switch_at: int) -> None:
    world = run_change("rename postcode", "strict", n_orders=n_orders, switch_at=switch_at)
    summary = world["summary"]
    assert summary["consumers_broken"] == 4
    assert summary["events_unread"] == 4 * (n_orders - switch_at)
    assert summary["published_v2"] == n_orders - switch_at
    assert broken_consumers(world["run"].frame) == {
        name: n_orders - switch_at for name in ("labels", "tax", "loyalty", "tracking")}


def test_tolerant_readers_break_only_where_they_need_the_renamed_field() -> None:
    assert run_change("rename postcode", "tolerant")["run"].readers.keys() == {
        "labels", "tax", "loyalty", "tracking"}
    matrix = change_matrix(n_orders=6, switch_at=2)
    assert matrix.loc["rename postcode"].to_dict() == {
        "strict": 4, "tolerant": 2, "tolerant + alias": 0}
    assert matrix.loc["add optional field", "tolerant"] == 0
    assert matrix.loc["remove required field", "tolerant + alias"] == 2


def test_a_registry_in_the_simulation_stops_the_change_before_anyone_reads_it() -> None:
    world = run_change("rename postcode", "strict", n_orders=8, switch_at=3, mode="full")
    assert world["summary"]["refused"] == 1
    assert world["summary"]["published_v2"] == 0
    assert world["summary"]["consumers_broken"] == 0
    assert (world["run"].frame["kind"] == "refused").sum() == 1
    assert {e.dataschema for e in world["run"].topic.events()} == {V1.uri}


def test_run_contract_needs_the_schema_and_the_change_together() -> None:
    with pytest.raises(InvalidArgument, match="both"):
        run_contract(V1, orders(2), readers=readers("strict"), new=V2)


def test_a_v2_reader_reads_a_mixed_topic_only_when_it_upcasts() -> None:
    needs = ("postal_code",)
    boundary = BoundaryUpcaster(shipping_upcasters(), StrictReader(V2, needs))
    run = run_contract(V1, orders(10),
                       readers={"plain": StrictReader(V2, needs), "upcasting": boundary},
                       new=V2, change=CHANGES["rename postcode"][1], switch_at=6)
    assert broken_consumers(run.frame) == {"plain": 6}
    assert len(run.read["upcasting"]) == 10 and boundary.upcast == 6
    assert contract_summary(run)["events_unread"] == 6


def test_exercise_07_2_runs_the_upcaster_under_fault_schedules() -> None:
    def forgets(data: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in data.items() if k != "postcode"}

    def misreads(data: dict[str, Any]) -> dict[str, Any]:
        return {**forgets(data), "postal_code": data["city"]}

    result = check("07.2", forgets, quiet=True)
    assert not result and result.schedules is not None
    assert result.schedules["invariant"] == "readable"
    assert "event 1 (O-0001, v1)" in result.message and "missing ['postal_code']" in result.message
    wrong_value = check("07.2", misreads, quiet=True)
    assert not wrong_value and wrong_value.schedules is not None
    assert wrong_value.schedules["invariant"] == "fields-kept"
    assert not check("07.2", 3, quiet=True)
    assert check("07.2", CHANGES["rename postcode"][1], quiet=True)
    assert [e.schema_version for e in mixed_stream(4)] == [1, 2, 1, 2]


def test_exercise_07_1_and_07_3_explain_a_wrong_answer() -> None:
    assert check("07.1", {"labels", "tax"}, quiet=True)
    assert "Too many" in check("07.1", {"labels", "tax", "loyalty"}, quiet=True).message
    assert "Too few" in check("07.1", {"labels"}, quiet=True).message
    assert "not consumers" in check("07.1", {"billing"}, quiet=True).message
    assert check("07.3", "backward", quiet=True)
    assert not check("07.3", "forward", quiet=True)


def test_the_breakage_chart_draws_reads_failures_and_the_switch() -> None:
    from eda_lab.charts import contract_breakage_chart

    world = run_change("rename postcode", "tolerant", n_orders=6, switch_at=2)
    spec = contract_breakage_chart(world["run"].frame, switch=2.0).to_dict()
    assert len(spec["layer"]) == 2
    values = [row for data in spec["datasets"].values() for row in data]
    assert {row.get("event") for row in values} >= {"read", "could not read"}
    assert len(contract_breakage_chart(world["run"].frame).to_dict()["layer"]) == 1


def test_a_schema_refuses_a_field_both_required_and_optional() -> None:
    with pytest.raises(InvalidArgument, match="both required and optional"):
        Schema("S", 1, ("a",), {"a": 0})
    with pytest.raises(InvalidArgument):
        Schema("S", 0)


def test_the_panel_reruns_the_change_the_learner_chooses() -> None:
    from eda_lab.lessons.n07_event_contracts import contract_panel

    panel = contract_panel(n_orders=6, switch_at=2)
    assert panel.result["summary"]["consumers_broken"] == 4  # rename, strict, no registry
    panel.controls["style"].value = "tolerant + alias"
    assert panel.result["summary"]["consumers_broken"] == 0
    panel.controls["style"].value = "strict"
    panel.controls["mode"].value = "full"
    assert panel.result["summary"]["refused"] == 1
    assert panel.result["summary"]["consumers_broken"] == 0
    assert panel.redraws == 4
