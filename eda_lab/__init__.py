"""eda_lab: learn event-driven architecture on a deterministic simulation.

The public API. Each name lives in a module of its own idea: events in
``events``, the simulation in ``sim``, channels in ``channel``, and so on.
"""

from eda_lab.channel import Channel, ConsumerGroup, Topic
from eda_lab.errors import (
    ChartTooLargeError,
    DataFileError,
    EdaLabError,
    InvalidEvent,
    ServiceUnavailable,
)
from eda_lab.events import Command, Event
from eda_lab.latency import Exponential, Fixed, Uniform
from eda_lab.notebook import notebook_setup, record
from eda_lab.services import Emitter, Sink
from eda_lab.sim import Simulation

__all__ = [
    "Channel",
    "ChartTooLargeError",
    "Command",
    "ConsumerGroup",
    "DataFileError",
    "EdaLabError",
    "Emitter",
    "Event",
    "Exponential",
    "Fixed",
    "InvalidEvent",
    "ServiceUnavailable",
    "Simulation",
    "Sink",
    "Topic",
    "Uniform",
    "notebook_setup",
    "record",
]
