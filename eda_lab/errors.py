"""Named exceptions. Every message says what happened and what to do next.

The hierarchy::

    EdaLabError                      anything eda_lab raises on purpose
    ├── InvalidEvent                 an event or command that breaks the envelope rules
    ├── ChartTooLargeError           a chart would need more rows than altair allows
    ├── ServiceUnavailable           a call to a service that is down (an outage)
    └── DataFileError                a shop data file that is missing or malformed

Modules that teach a later pattern add their own subclasses below (for example
``ConcurrencyError`` for event sourcing); each one documents itself.
"""

from __future__ import annotations


class EdaLabError(Exception):
    """Base class of every error eda_lab raises on purpose."""


class InvalidEvent(EdaLabError, ValueError):
    """An event (or command) does not follow the envelope rules.

    The message names the field that is wrong and how to fix it.
    """


class ChartTooLargeError(EdaLabError):
    """A chart would plot more rows than altair's limit of 5000."""


class ServiceUnavailable(EdaLabError):
    """A synchronous call reached a service that is down."""


class DataFileError(EdaLabError):
    """A shop data file is missing or has a malformed row (file and line are named)."""
