"""Test suites that ship with eda_lab, for backends of its interfaces.

:mod:`eda_lab.testing.store_contract`
    The event store contract: subclass ``EventStoreContract`` to prove that a
    backend keeps every rule of :mod:`eda_lab.store.contract`.
"""

__all__: list[str] = []  # the suites are imported by their module names
