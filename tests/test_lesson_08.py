"""Notebook 08's lesson module: finding a broker (or saying why there is none), the shop's
query API, the prediction 08.1, and the notebook skipping its live cells without a server."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eda_lab.backends.connection import ENV_VAR as NATS_URL_VARIABLE
from eda_lab.errors import InvalidArgument
from eda_lab.exercises import exercise_info
from eda_lab.lessons import check
from eda_lab.lessons.n08_events_on_a_real_broker import (
    RESTART_STORY,
    Broker,
    ShopApi,
    connect_broker,
)
from eda_lab.notebook import read_records

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "08_events_on_a_real_broker.ipynb"


def free_port() -> int:
    """A port of 127.0.0.1 on which nothing listens (bound once, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def closed_port() -> int:
    return free_port()


@pytest.fixture
def local_broker(monkeypatch: pytest.MonkeyPatch) -> Iterator[Broker]:
    monkeypatch.delenv(NATS_URL_VARIABLE, raising=False)
    broker = connect_broker()
    try:
        yield broker
    finally:
        broker.close()


# -- finding a broker ---------------------------------------------------------------------
def test_without_a_class_server_a_local_server_is_started_and_stopped_by_close(
        local_broker: Broker) -> None:
    assert local_broker.live and local_broker.where == "local"
    server = local_broker.server
    assert server.running and local_broker.url == server.url
    folder = server.store_dir
    assert folder is not None and folder.is_dir()
    assert "local nats-server" in local_broker.describe()
    local_broker.close()
    assert not server.running and not folder.exists()


def test_a_class_server_that_answers_is_used_and_not_stopped(
        local_broker: Broker, monkeypatch: pytest.MonkeyPatch) -> None:
    assert local_broker.url is not None
    monkeypatch.setenv(NATS_URL_VARIABLE, local_broker.url)
    with connect_broker() as broker:
        assert broker.live and broker.where == "class" and broker.server is None
        assert broker.url == local_broker.url
        assert NATS_URL_VARIABLE in broker.describe() and local_broker.url not in \
            broker.describe()
        assert broker.prefix != local_broker.prefix  # two runs never share a stream
    assert local_broker.server.running


def test_a_class_server_that_does_not_answer_is_reported_with_its_credentials_masked(
        closed_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NATS_URL_VARIABLE, f"nats://alice:s3cret@127.0.0.1:{closed_port}")
    broker = connect_broker(timeout=1.0)
    assert not broker.live and broker.where == "none" and broker.url is None
    assert "does not answer" in broker.reason and NATS_URL_VARIABLE in broker.reason
    assert f"nats://***@127.0.0.1:{closed_port}" in broker.reason
    for text in (broker.reason, broker.describe(), broker.skipped, repr(broker)):
        assert "s3cret" not in text and "alice" not in text
    assert broker.skipped.startswith("(skipped: no NATS server")
    assert "live cells below print that they are skipped" in broker.describe()
    broker.close()  # nothing to stop: no error


def test_a_url_given_as_argument_wins_over_the_environment(
        closed_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NATS_URL_VARIABLE, "nats://127.0.0.1:1")
    broker = connect_broker(f"nats://127.0.0.1:{closed_port}", timeout=1.0)
    assert not broker.live and str(closed_port) in broker.reason
    assert NATS_URL_VARIABLE not in broker.reason


@pytest.mark.parametrize("arguments", [{"url": 4222}, {"url": "http://x:1"},
                                       {"timeout": 0}, {"timeout": True}, {"timeout": "2"}])
def test_connect_broker_refuses_bad_arguments(arguments: dict[str, object]) -> None:
    with pytest.raises(InvalidArgument):
        connect_broker(**arguments)  # type: ignore[arg-type]


@pytest.mark.parametrize(("url", "where"), [(None, "local"), ("nats://x:4222", "none"),
                                            (None, "elsewhere")])
def test_a_broker_has_a_url_exactly_when_it_is_live(url: str | None, where: str) -> None:
    with pytest.raises(InvalidArgument):
        Broker(url, where)


def test_a_class_url_that_is_not_a_nats_url_is_reported_not_raised(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NATS_URL_VARIABLE, "http://alice:s3cret@")
    broker = connect_broker()
    assert not broker.live and NATS_URL_VARIABLE in broker.reason
    assert "s3cret" not in broker.reason and "not a NATS server URL" in broker.reason


@given(user=st.text(st.characters(categories=["L", "N"]), min_size=1, max_size=12),
       secret=st.text(st.characters(categories=["L", "N"]), min_size=1, max_size=12))
@settings(max_examples=20, deadline=None)
def test_no_credential_of_a_class_server_that_does_not_answer_is_shown(
        user: str, secret: str) -> None:
    port = free_port()
    broker = connect_broker(f"nats://{user}:{secret}@127.0.0.1:{port}", timeout=1.0)
    assert not broker.live and f"nats://***@127.0.0.1:{port}" in broker.reason
    for text in (broker.reason, broker.describe(), broker.skipped, repr(broker)):
        assert f"{user}:{secret}" not in text


# -- the shop's query API -----------------------------------------------------------------
def test_the_shop_api_answers_an_orders_lines_and_counts_each_query() -> None:
    api = ShopApi()
    assert api.lines("O-00001") == [{"product_id": "P-017", "quantity": 1,
                                     "unit_price": 76.49}]
    assert [line["product_id"] for line in api.lines("O-00002")][:2] == ["P-037", "P-018"]
    assert api.queries == 2
    api.lines("O-00001")[0]["quantity"] = 99  # a caller's copy, not the API's data
    assert api.lines("O-00001")[0]["quantity"] == 1


def test_the_shop_api_names_an_unknown_order_and_the_range_there_is() -> None:
    api = ShopApi()
    with pytest.raises(InvalidArgument, match=r"no order 'O-99999'.*O-00001"):
        api.lines("O-99999")
    assert api.queries == 0


# -- 08.1 (predict) -------------------------------------------------------------------------
def test_the_exercises_of_notebook_08_and_their_kinds() -> None:
    kinds = {info.id: info.kind for info in exercise_info() if info.id.startswith("08.")}
    assert kinds == {"08.1": "predict"}


def test_08_1_billing_resumes_and_a_new_latest_group_sees_nothing_pass_with_the_reason(
        ) -> None:
    result = check("08.1", (RESTART_STORY["while_stopped"], 0), quiet=True)
    assert result and result.message.startswith("correct: ")
    assert "durable position" in result.message and "start='latest'" in result.message


@pytest.mark.parametrize(("answer", "hint"), [
    ((15, 0), "does not start again from the beginning"),
    ((0, 0), "the stream stores events whether or not anyone is reading"),
    ((7, 0), "Count the events billing has not acknowledged"),
    ((5, 15), "a new group starts where its policy says"),
    ((5, 5), "a position belongs to a group")])
def test_08_1_a_wrong_prediction_gets_a_hint_without_the_answer(
        answer: tuple[int, int], hint: str) -> None:
    result = check("08.1", answer, quiet=True)
    assert not result and hint in result.message
    assert "handles 0" not in result.message and "5 orders" not in result.message


@pytest.mark.parametrize("answer", [5, "5, 0", (5.0, 0), (True, 0), (5, 0, 0)])
def test_08_1_refuses_an_answer_that_is_not_two_ints(answer: object) -> None:
    result = check("08.1", answer, quiet=True)
    assert not result and "correct" not in result.message


# -- the notebook without a server ----------------------------------------------------------
@pytest.mark.notebooks
def test_the_notebook_skips_its_live_cells_when_no_server_answers(
        closed_port: int, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import nbformat
    import papermill

    monkeypatch.setenv(NATS_URL_VARIABLE, f"nats://127.0.0.1:{closed_port}")
    output = tmp_path / NOTEBOOK.name
    papermill.execute_notebook(str(NOTEBOOK), str(output), parameters={"N_ORDERS": 3},
                               progress_bar=False, cwd=str(NOTEBOOK.parent))
    nb = nbformat.read(str(output), as_version=4)
    outputs = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    text = "".join(out.get("text", "") for out in outputs if out.output_type == "stream")
    assert "No NATS server" in text and "does not answer" in text
    live_cells = [cell for cell in nb.cells if cell.cell_type == "code"
                  and "if broker.live" in cell.source]
    assert len(live_cells) >= 4
    for cell in live_cells:
        printed = "".join(out.get("text", "") for out in cell.outputs)
        assert "(skipped: no NATS server" in printed, cell.source[:200]
    records = read_records(output)
    assert records["live"] is False and records["handled_after_restart"] is None
    assert records["same_read_model"] is None
