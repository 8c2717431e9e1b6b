"""eda_lab: learn event-driven architecture on a deterministic simulation.

The public API, one idea per module:

* ``events``: :class:`Event` (a fact) and :class:`Command` (a request), CloudEvents form.
* ``sim``, ``channel``, ``delivery``, ``services``, ``latency``, ``trace``, ``runs``: the
  simulation: a virtual clock, channels with topics, partitions and consumer groups
  served by a :class:`DeliveryPolicy`, emitters and sinks, the trace of everything that
  happened, and the typed ``*Run`` every ``run_*`` function returns.
* ``notification``, ``carried_state``, ``flow``: patterns 1 and 2 (event notification,
  event-carried state transfer) and the flow graph of a cascade. ``run_notification``
  and ``run_carried_state`` run Fowler's address change whole; its building blocks
  are public too, to build your own world:

  - :class:`SourceService`: the service that owns the records (the CRM) and emits a
    thin or a fat change event for each change; generic over the record's tracked
    ``fields`` (the address, ``street``/``city``/``postcode``, by default);
  - :class:`NotificationConsumer`: reacts to a thin event by querying the source
    back through a :class:`QueryBack` (the client: round trips, retries, backoff);
  - :class:`ReplicaConsumer`: keeps a replica from fat events, no calls.

  A consumer created after the source has records starts from a copy of it:
  ``consumer.bootstrap(source.addresses(), source.version)`` (the tracked fields of
  every record, and the event of each record's current version)::

      sim = Simulation(seed=1)
      topic = sim.channel("bus").topic("customers")
      crm = SourceService(sim, "crm", topic)
      crm.register("C-1", {"street": "Sonnenweg 1", "city": "Berlin", "postcode": "10115"})
      shipping = NotificationConsumer(sim, "shipping", crm, topic)
      shipping.bootstrap(crm.addresses(), crm.version)
* ``store`` (a package: the backend contract, the in-memory and SQLite stores),
  ``upcasting``, ``sourcing``, ``orders``: pattern 3 (event sourcing);
  ``testing.store_contract``: the contract suite a new backend subclasses.
* ``cqrs``, ``projections``: pattern 4 (CQRS).
* ``failures``: surviving failures (idempotent consumers, dead letters, the outbox,
  scale-out); ``backends``: the same contracts on a real engine (NATS JetStream).
* ``batching``, ``gcpause``: one batch size for every job that works through a log, and
  the collector paused only around the library's own bulk work.
* ``shop``: the data set every notebook shares; ``charts``, ``widgets``, ``notebook``,
  ``exercises``: what the notebooks show and check; ``lessons``: one module per
  notebook (its worlds, panels, demo apps and exercise checks); ``cli``: ``eda-lab``.

The pattern modules hold mechanisms only: they import no chart, widget, exercise,
data set or lesson (``tests/test_structure.py`` checks it).
"""

from eda_lab.carried_state import (
    ReplicaConsumer,
    run_carried_state,
    stale_intervals,
    staleness_summary,
)
from eda_lab.channel import Channel, ConsumerGroup, Topic
from eda_lab.cqrs import CommandResult, OrderCommandHandler, ProjectionRunner
from eda_lab.delivery import DeliveryPolicy
from eda_lab.errors import (
    ChartTooLargeError,
    CommandRejected,
    DataFileError,
    EdaLabError,
    InvalidArgument,
    InvalidEvent,
    ServiceUnavailable,
    WrongArgumentType,
)
from eda_lab.events import Command, Event
from eda_lab.failures import IdempotentConsumer, OutboxRelay
from eda_lab.flow import flow_graph
from eda_lab.latency import Exponential, Fixed, Uniform
from eda_lab.notebook import notebook_setup, record
from eda_lab.notification import (
    NotificationConsumer,
    QueryBack,
    SourceService,
    query_back_summary,
    run_notification,
)
from eda_lab.orders import Order, OrderRuleViolation
from eda_lab.projections import Projection
from eda_lab.services import Emitter, Sink
from eda_lab.shop import Shop, load_shop
from eda_lab.sim import Simulation
from eda_lab.sourcing import Aggregate, Repository
from eda_lab.store import (
    ConcurrencyError,
    EventStore,
    InMemoryEventStore,
    Recorded,
    SQLiteEventStore,
)
from eda_lab.upcasting import Upcasters

__all__ = [
    "Aggregate",
    "Channel",
    "ChartTooLargeError",
    "Command",
    "CommandRejected",
    "CommandResult",
    "ConcurrencyError",
    "ConsumerGroup",
    "DataFileError",
    "DeliveryPolicy",
    "EdaLabError",
    "Emitter",
    "Event",
    "EventStore",
    "Exponential",
    "Fixed",
    "IdempotentConsumer",
    "InMemoryEventStore",
    "InvalidArgument",
    "InvalidEvent",
    "NotificationConsumer",
    "Order",
    "OrderCommandHandler",
    "OrderRuleViolation",
    "OutboxRelay",
    "Projection",
    "ProjectionRunner",
    "QueryBack",
    "Recorded",
    "ReplicaConsumer",
    "Repository",
    "SQLiteEventStore",
    "ServiceUnavailable",
    "Shop",
    "Simulation",
    "Sink",
    "SourceService",
    "Topic",
    "Uniform",
    "Upcasters",
    "WrongArgumentType",
    "flow_graph",
    "load_shop",
    "notebook_setup",
    "query_back_summary",
    "record",
    "run_carried_state",
    "run_notification",
    "stale_intervals",
    "staleness_summary",
]
