"""Notebook 03, event sourcing: the gateway demo and the exercises.

The mechanism (aggregates, the repository, replay, snapshots, gateways) is in
:mod:`eda_lab.sourcing`, the shop's order in :mod:`eda_lab.orders`. The demo runs a
billing processor that asks an exchange-rate service and sends emails, live and then
replayed, with naive and with recording gateways (:func:`gateway_demo`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

from eda_lab.events import Event
from eda_lab.exercises import exercise
from eda_lab.sourcing import EffectGateway, RecordingGateway, replaying

__all__ = ["EmailService", "ExchangeRateService", "gateway_demo"]


# -- the gateway demo -----------------------------------------------------------------------
class ExchangeRateService:
    """A stand-in for an external exchange-rate API whose answer moves on every call.

    Markets move: asking the same question next month gives another number.
    """

    def __init__(self, rate: float = 1.10, drift: float = 0.01) -> None:
        self.rate, self.drift, self.calls = rate, drift, 0

    def __call__(self, currency: str) -> float:
        self.calls += 1
        return round(self.rate + self.drift * self.calls, 4)


class EmailService:
    """A stand-in for a mail server: every email sent lands in ``outbox``."""

    def __init__(self) -> None:
        self.outbox: list[tuple[str, str]] = []

    def __call__(self, to: str, subject: str) -> None:
        self.outbox.append((to, subject))


class _Billing:
    """An event processor: converts paid orders to USD and emails a receipt."""

    def __init__(self, rates: RecordingGateway, mail: EffectGateway) -> None:
        self.rates, self.mail = rates, mail
        self.revenue_usd = 0.0

    def handle(self, event: Event) -> None:
        if event.type == "OrderPaid":
            rate = self.rates.ask(event.id, "USD")
            self.revenue_usd = round(self.revenue_usd + event.data["amount"] * rate, 2)
            self.mail.send(event.subject, f"receipt for {event.data['order_id']}")


def gateway_demo(events: Iterable[Event], *, use_gateway: bool = True) -> pd.DataFrame:
    """Process ``events`` live, then rebuild by replay; one row per phase.

    With naive gateways (``use_gateway=False``) the replay asks the exchange-rate
    service again (another answer, so another revenue) and emails every customer
    again. With recording gateways the replay reproduces the live revenue exactly
    and sends nothing.
    """
    events = list(events)
    rate_service, mailer = ExchangeRateService(), EmailService()
    rates = RecordingGateway("exchange-rates", rate_service, recording=use_gateway)
    mail = EffectGateway("email", mailer, suppress_on_replay=use_gateway)
    rows = []
    for phase in ("live", "replay"):
        billing = _Billing(rates, mail)  # a replay rebuilds the processor from nothing
        before_mail, before_calls = len(mailer.outbox), rate_service.calls
        if phase == "replay":
            with replaying(rates, mail):
                for event in events:
                    billing.handle(event)
        else:
            for event in events:
                billing.handle(event)
        rows.append({"phase": phase, "gateway": "recording" if use_gateway else "naive",
                     "revenue_usd": billing.revenue_usd,
                     "rate_service_calls": rate_service.calls - before_calls,
                     "emails_sent": len(mailer.outbox) - before_mail,
                     "emails_suppressed": mail.suppressed if phase == "replay" else 0})
    return pd.DataFrame(rows)




# -- exercises for notebook 03 ------------------------------------------------------------
@exercise("03.1", "An order stream has 7 events, saved one event at a time, and snapshots "
                  "every 3 events. How many events does loading version 7 replay?",
          kind="concept", answer=int)
def _(answer: Any) -> str | tuple[str, ...] | None:
    if answer == 1:
        return None
    if answer == 7:
        return "That is without snapshots: the latest snapshot at or before 7 is at version 6."
    return ("A load starts from the latest snapshot, not from the first event.",
            "Find the latest snapshot at or before version 7 (a multiple of 3), then count "
            "the events after it.")


@exercise("03.2", "Writer A and writer B both load an order at version 2; A saves one "
                  "event, then B saves one. Which expected version does B's append carry, "
                  "and which actual version does its ConcurrencyError report? "
                  "Answer as a tuple (expected, actual).",
          kind="concept", answer=(int, int))
def _(answer: Any) -> str | None:
    if tuple(answer) == (2, 3):
        return None
    return ("B expects the version it loaded; the store is now one event further "
            "because A saved first.")


@exercise("03.3", "A replay without a recording gateway sends the receipt emails again. "
                  "With 4 paid orders, how many emails do the live run and one naive "
                  "replay send in total?",
          kind="concept", answer=int)
def _(answer: Any) -> str | None:
    if answer == 8:
        return None
    return "The live run sends one per paid order, and the naive replay sends them all again."
