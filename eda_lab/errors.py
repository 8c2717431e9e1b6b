"""Named exceptions. Every message says what happened and what to do next.

Every error eda_lab raises on purpose is an :class:`EdaLabError`, so a notebook
can catch them all with one ``except EdaLabError``. The general ones live here;
each pattern module defines the errors of its own idea next to the code that
raises them. The whole tree (a test keeps it complete)::

    EdaLabError (the base)
    ├── InvalidArgument         (errors)     an argument is out of range, empty or unknown
    │   └── InvalidIdentifier   (errors)     a name bound for SQL is not a plain identifier
    │       └── InvalidTableName (projections) a projection's table (also a ProjectionError)
    ├── NotFound                (errors)     a name or id that nothing answers to (a KeyError)
    ├── WrongArgumentType       (errors)     an argument is of the wrong kind
    ├── InvalidEvent            (events)     an event or command breaks the envelope rules
    ├── ReadOnlyData            (events)     an event's data was changed in place
    ├── CommandRejected         (errors)     a command's receiver refused it, with the reason
    ├── DamagedFile             (errors)     SQLite finds no database in a file, or a bad page
    ├── ChartTooLargeError      (charts)     a chart would embed more than 5000 rows
    ├── ServiceUnavailable      (errors)     a synchronous call reached a service that is down
    ├── UnknownService          (sim)        no service by that name in the simulation (a NotFound)
    ├── ChannelConflict         (sim)        an existing channel asked for with other settings
    ├── RebalanceNotModelled    (channel)    a rebalance this model does not simulate
    ├── DataFileError           (shop)       a data file is missing or has a malformed line
    ├── ShopQueryError          (shop)       a question about the shop data makes no sense
    ├── UnknownExercise         (exercises)  check() got an exercise id nobody registered
    ├── DuplicateExercise       (exercises)  exercise() got an id another check already has
    ├── InvalidExercise         (exercises)  exercise() got an unknown kind or answer spec
    ├── UnknownFaultCheck       (schedules)  no fault schedules for that exercise (a NotFound)
    ├── NoCodeChecked           (schedules)  a replay without code, before any check ran
    ├── InjectedCrash           (schedules)  a crash a fault schedule injected on purpose
    ├── ScenarioError           (notification) a scenario's settings are out of range
    ├── UnknownEntity           (notification) a query-back asked for an unknown id
    ├── InvalidRecord           (notification) a record lacks a field its source tracks
    ├── UnknownSetting          (notification) a scenario helper got a keyword it lacks
    ├── ThinEventError          (carried_state) a thin event cannot rebuild a replica
    ├── OrderingError           (carried_state) an ordering scenario setting is out of range
    ├── NoSuchConversation      (flow)       no events share that correlation id
    ├── NoSuchEventType         (flow)       no event of that type in the trace (a NotFound)
    ├── ConcurrencyError        (store.contract) the stream moved on: expected vs actual version
    ├── EventIdConflict         (store.contract) same event id, different content
    ├── CorruptEventError       (store.contract) a stored row cannot be read (its position named)
    │   └── DamagedStoreFile (store.sqlite) the store's file (also a DamagedFile)
    ├── StoreSchemaError        (store.contract) the database lacks a table or column
    ├── StoreClosed             (store.contract) a closed store was asked to read or append
    ├── SchemaVersionError      (upcasting)  no upcaster chain reaches the reader's version
    ├── IncompatibleSchema      (contracts)  a registry refused a schema that breaks its rule
    ├── UnknownSchema           (contracts)  an event names a dataschema the registry lacks
    ├── BrokenContract          (contracts)  a consumer could not read an event's data
    ├── UnknownEventType        (sourcing)   an aggregate has no handler for an event type
    ├── AggregateNotFound       (sourcing)   no events for that id (a NotFound)
    ├── MissingRecording        (sourcing)   a replay asked a gateway for an unrecorded answer
    ├── OrderRuleViolation      (orders)     an order command breaks a business rule
    ├── ProjectionError         (projections) a projection failed on an event
    ├── ProjectionTimeout       (cqrs)       read-your-writes waited too long
    ├── UnknownProjection       (cqrs)       no read model by that name
    ├── ReadModelUpdateFailed   (cqrs)       a read table in the write's transaction failed
    ├── NatsServerError         (backends.nats_server) nats-server is missing or did not start
    ├── JetStreamError          (backends.jetstream) JetStream refused a request
    │   ├── JetStreamUnavailable                 no answer from the server in time
    │   └── BatchTooLarge                        an append does not fit in one message
    ├── BadParameter            (parameters) a parameter its notebook cell refuses
    ├── UncheckedParameters     (parameters) a warning: no declarations to check against
    ├── NotebookFailed          (cli)        a notebook run stopped with an error
    └── CliError                (cli)        a bad `eda-lab` command line
        ├── UnknownNotebook                  no notebook matches the name
        ├── UnknownParameter                 the parameters cell does not declare it
        ├── ParameterOutOfRange              outside the range its parameters cell declares
        └── SolutionMarkerError              unbalanced BEGIN/END SOLUTION markers
"""

from __future__ import annotations

import math
import re
import reprlib
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from difflib import get_close_matches
from typing import Any

__all__ = [
    "ChartTooLargeError",
    "CommandRejected",
    "DamagedFile",
    "DataFileError",
    "EdaLabError",
    "InvalidArgument",
    "InvalidEvent",
    "InvalidIdentifier",
    "NotFound",
    "ServiceUnavailable",
    "WrongArgumentType",
    "check_columns",
    "check_identifier",
    "check_instance",
    "check_number",
    "damaged_file",
    "did_you_mean",
    "naming_damage",
    "shown",
]


def did_you_mean(name: object, known: Iterable[str]) -> str:
    """The end of an error message for an unknown ``name``: the closest known name, or
    the list of known names when none is close.

    >>> did_you_mean("shiping", ["billing", "shipping"])
    "did you mean 'shipping'?"
    >>> did_you_mean("crm-typo", ["crm", "shipping"])
    "did you mean 'crm'?"
    >>> did_you_mean("x", ["billing", "shipping"])
    "known: 'billing', 'shipping'."
    >>> did_you_mean("x", [])
    'there are none yet.'
    """
    if not isinstance(known, Iterable) or isinstance(known, (str, bytes)):
        raise WrongArgumentType(f"known must be the names there are, got {shown(known)}.")
    names = sorted(k for k in known if isinstance(k, str))
    close = get_close_matches(name, names, n=1, cutoff=0.5) if isinstance(name, str) else []
    if isinstance(name, str) and not close:  # a typo after a known name: 'crm-typo'
        close = [known for known in names if name.startswith(known) or known.startswith(name)]
    if close:
        return f"did you mean {close[0]!r}?"
    if not names:
        return "there are none yet."
    return "known: " + ", ".join(repr(n) for n in names) + "."


def shown(value: object) -> str:
    """``value``'s repr for an error message, cut short: a huge or deeply nested
    argument must not turn the message itself into a new error.

    >>> shown(10**30)
    '1000000000000000000000000000000'
    >>> shown([[[[[[[[1]]]]]]]])
    '[[[[[[[...]]]]]]]'
    """
    return reprlib.repr(value)


def check_number(value: object, name: str, *, low: float | None = None,
                 high: float | None = None, integer: bool = False, advice: str = "") -> None:
    """Refuse ``value`` unless it is a number (a whole one if ``integer``) from ``low`` to
    ``high`` (either bound may be None: open). The one argument check behind every
    count, seed, rate and number of seconds a public function takes.

    A bool is not a number here, and neither is NaN. The message names the argument,
    shows what was given, gives the range and ends with ``advice`` (what to do).

    >>> check_number(3, "n_orders", low=1, high=200, integer=True)
    >>> check_number("5", "n_orders", low=1, high=200, integer=True)
    Traceback (most recent call last):
    ...
    eda_lab.errors.WrongArgumentType: n_orders must be a whole number from 1 to 200, got '5' ...
    >>> check_number(10**9, "n_orders", low=1, high=200, integer=True, advice="Use fewer.")
    Traceback (most recent call last):
    ...
    eda_lab.errors.InvalidArgument: n_orders must be ... from 1 to 200, got 1000000000. Use fewer.
    """
    if not all(isinstance(b, (int, float)) and not isinstance(b, bool)
               for b in (low, high) if b is not None):
        raise WrongArgumentType(f"check_number's bounds must be numbers or None, got "
                                f"low={shown(low)}, high={shown(high)}.")
    kinds = (int,) if integer else (int, float)
    what = "a whole number" if integer else "a number"
    if low is not None and high is not None:
        what += f" from {low:g} to {high:g}" if not integer else f" from {low} to {high}"
    elif low is not None:
        what += f" >= {low:g}"
    elif high is not None:
        what += f" <= {high:g}"
    if isinstance(value, bool) or not isinstance(value, kinds):
        example = "a whole number, such as 3" if integer else "a number, such as 1.5"
        raise WrongArgumentType(f"{name} must be {what}, got {shown(value)} "
                                f"(a {type(value).__name__}). {advice or 'Pass ' + example + '.'}")
    number = float(value) if not integer else value
    if ((isinstance(number, float) and math.isnan(number))
            or (low is not None and number < low) or (high is not None and number > high)):
        raise InvalidArgument(f"{name} must be {what}, got {shown(value)}. "
                              f"{advice or 'Choose a value in that range.'}")


def check_instance(value: object, name: str, kind: type | tuple[type, ...],
                   advice: str = "") -> None:
    """Refuse ``value`` unless it is a ``kind``: a WrongArgumentType naming the argument,
    the kind wanted, what came instead, and ``advice`` (where to get a right one).

    >>> check_instance("sim", "sim", dict, "Pass Simulation(...).")
    Traceback (most recent call last):
    ...
    eda_lab.errors.WrongArgumentType: sim must be a dict, got 'sim' (a str). Pass Simulation(...).
    """
    try:
        right = isinstance(value, kind)
    except TypeError:
        raise WrongArgumentType(f"kind must be a class or a tuple of classes, got "
                                f"{shown(kind)}.") from None
    if not right:
        kinds = kind if isinstance(kind, tuple) else (kind,)
        wanted = " or ".join(k.__name__ for k in kinds)
        tail = f" {advice}" if advice else ""
        raise WrongArgumentType(f"{name} must be a {wanted}, got {shown(value)} "
                                f"(a {type(value).__name__}).{tail}")


def check_columns(frame: Any, name: str, columns: Iterable[str], advice: str = "") -> None:
    """Refuse ``frame`` unless it is a pandas DataFrame with all of ``columns``.

    The frames the analysis functions take come from a run (``run.frame``): the
    message names the missing columns and says where a right frame comes from.
    """
    import pandas as pd

    check_instance(frame, name, pd.DataFrame, advice)
    names = list(columns) if isinstance(columns, Iterable) else None
    if names is None or isinstance(columns, str) or not all(isinstance(c, str) for c in names):
        raise WrongArgumentType(f"columns must be column names, got {shown(columns)}.")
    missing = [c for c in names if c not in frame.columns]
    if missing:
        tail = f" {advice}" if advice else ""
        raise InvalidArgument(f"{name} lacks the column(s) {missing}; it has "
                              f"{list(frame.columns)}.{tail}")


class EdaLabError(Exception):
    """Base class of every error eda_lab raises on purpose."""


class InvalidArgument(EdaLabError, ValueError):
    """A function or class got a value it cannot use: out of range, empty, unknown.

    The message names the argument, shows the value and says what is allowed. It is
    also a ``ValueError``, so code that catches ``ValueError`` still catches it.
    """


class NotFound(EdaLabError, KeyError):
    """A name or id that nothing answers to: an exercise, a projection, an entity.

    It is also a ``KeyError``, so ``except KeyError`` still catches it, but it prints
    its message as written: ``KeyError`` would wrap it in quotes.

    >>> print(NotFound("there is no projection 'revnue'; did you mean 'revenue'?"))
    there is no projection 'revnue'; did you mean 'revenue'?
    """

    def __str__(self) -> str:
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class InvalidIdentifier(InvalidArgument):
    """A name that would reach SQL through an f-string (a table, a PRAGMA argument) is
    not a plain identifier: SQL cannot bind a table's name as a parameter, so the name
    is checked when it is set, and anything else is refused by name."""


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def check_identifier(name: object, what: str, *,
                     error: type[InvalidIdentifier] = InvalidIdentifier) -> str:
    """``name`` if it is a plain SQL identifier (ASCII letters, digits and ``_``, not
    starting with a digit, at most 63 characters, not SQLite's reserved ``sqlite_``
    prefix), else ``error`` naming ``what`` it is.

    >>> check_identifier("orders_to_ship", "table")
    'orders_to_ship'
    >>> check_identifier("x; DROP TABLE events", "table")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    eda_lab.errors.InvalidIdentifier: table 'x; DROP TABLE events' is not a plain SQL ...
    """
    if (not isinstance(name, str) or _IDENTIFIER.fullmatch(name) is None
            or name.lower().startswith("sqlite_")):
        raise error(f"{what} {name!r} is not a plain SQL identifier: use ASCII letters, "
                    "digits and _ (not first), at most 63 characters, not starting with "
                    "sqlite_.")
    return name


class DamagedFile(EdaLabError):
    """A database file is damaged: SQLite finds no database in it (a broken header,
    another format's file) or a malformed page. The message names the file, what was
    being done, and what to do (restore it, or rebuild what can be rebuilt)."""


def damaged_file(path: str, exc: BaseException, doing: str, advice: str, *,
                 error: type[DamagedFile] = DamagedFile) -> DamagedFile:
    """The named error for SQLite's ``exc`` if it says the file at ``path`` is damaged
    or is not a database (``SQLITE_CORRUPT*``, ``SQLITE_NOTADB``); any other error (a
    lock timeout, a full disk...) is raised again as it is. Use it as
    ``raise damaged_file(path, exc, "reading events", "restore it") from exc``."""
    check_instance(exc, "exc", BaseException, "Pass the exception SQLite raised.")
    name = getattr(exc, "sqlite_errorname", "")
    if not isinstance(name, str) or not name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        raise exc
    what = ("SQLite finds no database in it: its header is damaged or it is another kind "
            "of file" if name == "SQLITE_NOTADB" else "a page of it is malformed")
    return error(f"{path!r} is damaged ({name}: {exc}) while {doing}: {what}. Nothing was "
                 f"skipped or changed: {advice}.")


@contextmanager
def naming_damage(path: str, doing: str, advice: str, *,
                  on_error: Callable[[], object] | None = None) -> Iterator[None]:
    """Inside it, SQLite's word that the file at ``path`` is damaged becomes a
    :class:`DamagedFile` (see :func:`damaged_file`); ``on_error`` (closing the
    connection, say) runs first on any SQLite error."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        if on_error is not None:
            on_error()
        raise damaged_file(path, exc, doing, advice) from exc


class WrongArgumentType(EdaLabError, TypeError):
    """An argument of the wrong kind (one event where a list of events is needed, say).

    The message says what to pass instead. It is also a ``TypeError``.
    """


class InvalidEvent(EdaLabError, ValueError):
    """An event (or command) does not follow the envelope rules.

    The message names the field that is wrong and how to fix it.
    """


class CommandRejected(EdaLabError):
    """A command's receiver refused it; the message is the reason in plain words.

    Unlike an event (a fact, which cannot be refused), a command is a request.
    """


class ChartTooLargeError(EdaLabError):
    """A chart would plot more rows than altair's limit of 5000."""


class ServiceUnavailable(EdaLabError):
    """A synchronous call reached a service that is down."""


class DataFileError(EdaLabError):
    """A shop data file is missing or has a malformed row (file and line are named)."""
