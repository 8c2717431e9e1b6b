"""The shop's Order as an event-sourced aggregate.

Commands (``place``, ``add_item``, ``pay``, ``ship``, ``cancel``) check the rules
against the current state and, if allowed, record an event; handlers apply the
events. The events are the shared shop vocabulary (see ``eda_lab.shop``)::

    OrderPlaced    {order_id, customer_id}
    ItemAdded      {order_id, product_id, quantity, unit_price}
    OrderPaid      {order_id, amount}
    OrderShipped   {order_id}
    OrderCancelled {order_id, reason}

>>> order = Order("O-1")
>>> order.place("C-1")
>>> order.add_item("P-1", 2, 9.5)
>>> order.pay(19.0)
>>> order.status, order.total, order.version
('paid', 19.0, 3)

A refused command raises :class:`OrderRuleViolation` with the reason in plain
words, and records nothing.
"""

from __future__ import annotations

from typing import Any

from eda_lab.errors import EdaLabError
from eda_lab.events import Event
from eda_lab.sourcing import Aggregate, on

__all__ = ["ORDER_EVENT_TYPES", "Order", "OrderRuleViolation"]

ORDER_EVENT_TYPES = ("OrderPlaced", "ItemAdded", "OrderPaid", "OrderShipped", "OrderCancelled")


class OrderRuleViolation(EdaLabError):
    """A command on an order was refused by a business rule (the message says which)."""


class Order(Aggregate):
    """An order: ``status`` is "new", "placed", "paid", "shipped" or "cancelled".

    State: ``customer_id``, ``items`` (one dict per ItemAdded: product_id,
    quantity, unit_price), ``total`` (sum of quantity x unit_price, rounded to
    cents), ``paid`` (the amount paid, 0.0 until paid) and ``cancel_reason``.
    """

    source = "shop"

    def __init__(self, id: str, **kwargs: Any) -> None:
        super().__init__(id, **kwargs)
        self.status = "new"
        self.customer_id: str | None = None
        self.items: list[dict[str, Any]] = []
        self.total = 0.0
        self.paid = 0.0
        self.cancel_reason: str | None = None

    # -- commands: check the rules, then record ---------------------------------------
    def _refuse(self, reason: str) -> OrderRuleViolation:
        return OrderRuleViolation(f"order {self.id!r} ({self.status}): {reason}")

    def place(self, customer_id: str) -> None:
        """Open the order for ``customer_id``."""
        if self.status != "new":
            raise self._refuse("it has already been placed; place a new order instead.")
        if not isinstance(customer_id, str) or not customer_id:
            raise self._refuse("an order needs a customer id.")
        self._record("OrderPlaced", {"order_id": self.id, "customer_id": customer_id})

    def add_item(self, product_id: str, quantity: int, unit_price: float) -> None:
        """Add ``quantity`` of ``product_id`` at ``unit_price`` each."""
        if self.status == "new":
            raise self._refuse("place the order before adding items.")
        if self.status != "placed":
            raise self._refuse(f"cannot add items to an order that is {self.status} "
                               "(items can only be added before payment).")
        if type(quantity) is not int or quantity < 1:
            raise self._refuse(f"quantity must be a whole number >= 1, got {quantity!r}.")
        if isinstance(unit_price, bool) or not isinstance(unit_price, (int, float)) \
                or unit_price < 0:
            raise self._refuse(f"unit price must be a number >= 0, got {unit_price!r}.")
        self._record("ItemAdded", {"order_id": self.id, "product_id": product_id,
                                   "quantity": quantity, "unit_price": float(unit_price)})

    def pay(self, amount: float) -> None:
        """Pay the order; ``amount`` must equal the total."""
        if self.status == "paid" or self.paid:
            raise self._refuse("it has already been paid; an order cannot be paid twice.")
        if self.status != "placed":
            raise self._refuse(f"only a placed order can be paid, this one is {self.status}.")
        if not self.items:
            raise self._refuse("it has no items; add items before paying.")
        if abs(float(amount) - self.total) > 0.005:
            raise self._refuse(f"the amount {amount} does not match the total {self.total}.")
        self._record("OrderPaid", {"order_id": self.id, "amount": float(amount)})

    def ship(self) -> None:
        """Ship a paid order."""
        if self.status == "shipped":
            raise self._refuse("it has already been shipped.")
        if self.status == "cancelled":
            raise self._refuse("a cancelled order cannot be shipped.")
        if self.status != "paid":
            raise self._refuse("cannot ship an unpaid order; it must be paid first.")
        self._record("OrderShipped", {"order_id": self.id})

    def cancel(self, reason: str) -> None:
        """Cancel the order (not possible once shipped)."""
        if self.status == "shipped":
            raise self._refuse("cannot cancel a shipped order; start a return instead.")
        if self.status == "cancelled":
            raise self._refuse("it is already cancelled.")
        if self.status == "new":
            raise self._refuse("an order that was never placed cannot be cancelled.")
        self._record("OrderCancelled", {"order_id": self.id, "reason": str(reason)})

    # -- handlers: apply facts, never refuse ----------------------------------------------
    @on("OrderPlaced")
    def _placed(self, event: Event) -> None:
        self.status = "placed"
        self.customer_id = event.data["customer_id"]

    @on("ItemAdded")
    def _item_added(self, event: Event) -> None:
        data = event.data
        self.items.append({"product_id": data["product_id"], "quantity": data["quantity"],
                           "unit_price": data["unit_price"]})
        self.total = round(self.total + data["quantity"] * data["unit_price"], 2)

    @on("OrderPaid")
    def _paid(self, event: Event) -> None:
        self.status = "paid"
        self.paid = float(event.data["amount"])

    @on("OrderShipped")
    def _shipped(self, event: Event) -> None:
        self.status = "shipped"

    @on("OrderCancelled")
    def _cancelled(self, event: Event) -> None:
        self.status = "cancelled"
        self.cancel_reason = event.data.get("reason")
