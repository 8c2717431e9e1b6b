"""The flow graph: a cascade of notifications rebuilt from causation ids in the trace."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eda_lab import charts
from eda_lab.flow import NoSuchConversation, conversation, flow_graph, max_hops
from eda_lab.notification import run_notification, run_order_cascade


def test_the_cascade_graph_follows_the_handlers() -> None:
    graph = flow_graph(run_order_cascade(n_orders=4).frame)
    assert graph.path_exists("service:shop", "service:mailer")
    assert graph.successors("event:OrderPlaced") == ["service:analytics", "service:billing"]
    assert graph.successors("service:billing") == ["event:PaymentRequested"]
    assert not graph.path_exists("service:mailer", "service:shop")
    depth = graph.nodes.set_index("node")["depth"]
    assert depth["service:shop"] == 0 and depth["event:OrderPlaced"] == 1
    assert depth["event:ShipmentScheduled"] == 7 and depth["service:mailer"] == 8
    assert set(graph.edges["count"]) == {4}


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 1000), n_orders=st.integers(1, 8), latency=st.floats(0.0, 5.0))
def test_every_conversation_is_a_three_hop_chain(seed: int, n_orders: int,
                                                  latency: float) -> None:
    frame = run_order_cascade(seed=seed, n_orders=n_orders, latency=latency).frame
    assert max_hops(frame) == 3
    roots = frame[(frame["kind"] == "emit") & (frame["causation_id"] == "")]
    assert len(roots) == n_orders
    for root in roots["event_id"]:
        chain = conversation(frame, root)
        assert chain["type"].tolist() == ["OrderPlaced", "PaymentRequested",
                                          "PaymentCaptured", "ShipmentScheduled"]
        assert chain["hop"].tolist() == [0, 1, 2, 3]
        assert chain["cause_type"].tolist()[1:] == chain["type"].tolist()[:-1]
        assert chain["t"].is_monotonic_increasing
        assert chain["subject"].nunique() == 1


def test_query_backs_show_up_as_calls_in_the_graph() -> None:
    run = run_notification(customers=5, duration=60.0, consumers=2)
    graph = flow_graph(run.frame)
    calls = graph.edges[graph.edges["kind"] == "queries"]
    assert set(zip(calls["source"], calls["target"], strict=True)) == {
        ("service:shipping", "service:crm"), ("service:quoting", "service:crm")}
    assert "queries" not in set(flow_graph(run.frame, include_calls=False).edges["kind"])


def test_an_unknown_conversation_is_explained() -> None:
    frame = run_order_cascade(n_orders=1).frame
    with pytest.raises(NoSuchConversation, match="correlation id"):
        conversation(frame, "nope")
    assert max_hops(frame.iloc[0:0]) == 0


def test_flow_chart_draws_nodes_and_edges() -> None:
    graph = flow_graph(run_order_cascade(n_orders=2).frame)
    spec = charts.flow_chart(graph).to_dict()
    marks = [layer["mark"]["type"] for layer in spec["layer"]]
    assert marks == ["line", "point", "point", "text"]
    nodes = spec["datasets"][spec["layer"][2]["data"]["name"]]
    assert {n["label"] for n in nodes} >= {"shop", "OrderPlaced", "mailer"}
    # the legend lists only the kinds of edge drawn, below the graph
    colour = spec["layer"][0]["encoding"]["color"]
    assert colour["scale"]["domain"] == ["emits", "handled by"]
    assert colour["legend"]["orient"] == "bottom"


def test_query_arrows_point_from_the_caller_to_the_source() -> None:
    from eda_lab.notification import run_notification

    graph = flow_graph(run_notification(customers=5, duration=120.0).frame)
    spec = charts.flow_chart(graph).to_dict()
    heads = spec["datasets"][spec["layer"][1]["data"]["name"]]
    crm = graph.nodes.set_index("node").loc["service:crm"]
    queries = [h for h in heads if h["kind"] == "queries"]
    assert len(queries) == 3
    for head in queries:
        # the head sits next to the CRM (left of its callers) and points left, at it
        assert head["x"] < crm["x"] + 0.5
        assert 90 < abs(head["angle"]) <= 180
    emits = [h for h in heads if h["kind"] == "emits"]
    assert all(abs(h["angle"]) < 90 for h in emits)  # events flow to the right
    kinds = spec["layer"][0]["encoding"]["color"]["scale"]["domain"]
    assert kinds == ["emits", "handled by", "queries"]


def test_consumers_of_lists_every_consumer_of_a_type_and_what_it_emits_next() -> None:
    from eda_lab.flow import consumers_of

    frame = run_order_cascade(n_orders=4).frame
    placed = consumers_of(frame, "OrderPlaced")
    assert placed["consumer"].tolist() == ["analytics", "billing"]
    assert placed["deliveries"].tolist() == [4, 4]
    assert placed.set_index("consumer")["then_emits"].to_dict() == {
        "analytics": "", "billing": "PaymentRequested"}
    last = consumers_of(frame, "ShipmentScheduled")
    assert last["consumer"].tolist() == ["mailer"] and last["then_emits"].tolist() == [""]


def test_consumers_of_an_unknown_type_names_the_known_ones() -> None:
    from eda_lab.flow import NoSuchEventType, consumers_of

    with pytest.raises(NoSuchEventType, match="OrderPlaced"):
        consumers_of(run_order_cascade(n_orders=1).frame, "OrderPlacd")
