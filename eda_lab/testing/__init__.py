"""Test suites that ship with eda_lab, for backends of its interfaces.

:mod:`eda_lab.testing.store_contract`
    The event store contract: subclass ``EventStoreContract`` to prove that a
    backend keeps every rule of :mod:`eda_lab.store.contract`.
:mod:`eda_lab.testing.build_checks`
    The assertions every build-it exercise's tests make: its reference survives all
    the fault schedules; a wrong solution breaks the named invariant, and the replay
    of its seed breaks it again.
:mod:`eda_lab.testing.channel_contract`
    The channel contract: subclass ``ChannelContract`` with a ``ChannelWorld`` to prove
    a channel keeps per-key order, delivery to every group, retries, dead letters and
    resuming from a durable position (the simulated and the JetStream channel pass it).
:mod:`eda_lab.testing.crash`
    The crash suite's harness: children killed with SIGKILL at random instants, crash
    images of a running writer, damaged copies of a file, and the checks after each.
"""

__all__: list[str] = []  # the suites are imported by their module names
