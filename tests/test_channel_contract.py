"""One channel contract, two channels: the simulation's and NATS JetStream's.

The tests live in :mod:`eda_lab.testing.channel_contract`; each class below runs all
of them against one channel. The JetStream run shares one server for the module and
gives each test a runtime with its own stream names.
"""

from __future__ import annotations

import pytest

from eda_lab.backends import NatsServer
from eda_lab.testing.channel_contract import (
    ChannelContract,
    ChannelWorld,
    JetStreamWorld,
    SimulatedWorld,
    needs_nats_server,
    server_fixture,
)


class TestSimulatedChannel(ChannelContract):
    def make_world(self) -> ChannelWorld:
        return SimulatedWorld()


server = server_fixture()


@needs_nats_server
class TestJetStreamChannel(ChannelContract):
    @pytest.fixture(autouse=True)
    def _server(self, server: NatsServer) -> None:
        self.url = server.url

    def make_world(self) -> ChannelWorld:
        return JetStreamWorld(self.url)
