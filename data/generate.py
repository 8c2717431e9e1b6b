"""Generate the shop data set that every eda_lab notebook shares.

Run it from anywhere::

    python data/generate.py              # rewrite the CSV files next to this script
    python data/generate.py --out DIR    # write them somewhere else

The script uses only the standard library and one seeded ``random.Random``, so two
runs write byte-identical files (a test checks this against the committed files).
It simulates four weeks of a small web shop, starting Monday 2026-01-05 09:00 UTC:

* about 300 customers: most registered during the two years before the period,
  some register during it; a few dozen move house during the period (Fowler's
  example: the quoting service must learn the new address);
* 40 products in six categories;
* 3000 orders with a daily rhythm (quiet nights, a lunch bump, a busy evening,
  busier weekends), one to five lines each;
* what happened to each order: most are paid within minutes and shipped by the
  warehouse (which works 07:00-19:00, Monday to Saturday); some are cancelled by
  the customer, some never paid (cancelled after 72 hours, or still open when the
  period ends), a few paid orders are cancelled before they ship.

Nothing after the end of the period (2026-02-02 09:00 UTC) is written: the files
are a snapshot taken at that moment, so late orders are still "placed" or "paid".
See data/README.md for every column.
"""

from __future__ import annotations

import argparse
import csv
import random
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

SEED = 20260105
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # a Monday
END = START + timedelta(days=28)
HISTORY_START = datetime(2024, 1, 1, tzinfo=UTC)

N_CUSTOMERS = 300
N_NEW_CUSTOMERS = 40  # of which register during the period
N_ORDERS = 3000
N_MOVERS = 60  # customers who change address during the period
N_DOUBLE_MOVERS = 8  # of which move twice

#: Seconds between an order being placed and each of its lines being added
#: (line k is added at placed_at + k * ITEM_GAP_SECONDS). The loader uses the same rule.
ITEM_GAP_SECONDS = 5

# Relative order volume per hour of the day (UTC) and per weekday (Monday first).
HOUR_WEIGHTS = (
    0.30, 0.15, 0.10, 0.08, 0.08, 0.15, 0.40, 0.80, 1.10, 1.30, 1.40, 1.50,
    1.80, 1.60, 1.30, 1.20, 1.30, 1.50, 1.90, 2.30, 2.40, 2.00, 1.30, 0.70,
)
DAY_WEIGHTS = (1.00, 0.95, 0.95, 1.00, 1.05, 1.20, 1.30)

FIRST_NAMES = (
    "Ada", "Alan", "Amara", "Anna", "Arjun", "Ben", "Carla", "Chen", "Dana", "David",
    "Elena", "Emil", "Fatima", "Felix", "Grace", "Hannah", "Hugo", "Ines", "Ivan", "Jana",
    "Jonas", "Julia", "Kai", "Karim", "Lara", "Leo", "Lina", "Luca", "Maja", "Marek",
    "Maria", "Mateo", "Mia", "Nadia", "Noah", "Nora", "Olga", "Omar", "Paul", "Priya",
    "Rosa", "Sam", "Sara", "Sofia", "Tariq", "Theo", "Tom", "Vera", "Yara", "Zoe",
)
LAST_NAMES = (
    "Adams", "Bauer", "Becker", "Brandt", "Costa", "Demir", "Dubois", "Eriksen", "Fischer",
    "Garcia", "Hahn", "Hoffmann", "Ivanova", "Jansen", "Kaya", "Keller", "Klein", "Kowalski",
    "Kraus", "Lange", "Lehmann", "Lopez", "Meyer", "Moreau", "Nagy", "Novak", "Okafor",
    "Olsen", "Park", "Peters", "Popescu", "Richter", "Rossi", "Santos", "Schmidt",
    "Schulz", "Silva", "Singh", "Sommer", "Tanaka", "Vogel", "Wagner", "Weber", "Wolf",
    "Yilmaz", "Zimmermann",
)
STREET_NAMES = (
    "Ahornweg", "Am Markt", "Bahnhofstrasse", "Birkenallee", "Bruckenstrasse",
    "Dorfstrasse", "Eichendorffweg", "Feldstrasse", "Gartenstrasse", "Goethestrasse",
    "Hauptstrasse", "Hafenweg", "Kirchplatz", "Lindenstrasse", "Muhlenweg", "Parkallee",
    "Rosenweg", "Schillerstrasse", "Schulstrasse", "Seestrasse", "Sonnenweg",
    "Tannenweg", "Uferstrasse", "Waldstrasse", "Wiesenweg",
)
# City and the first digits of its postcodes (postcodes keep their leading zeros).
CITIES = (
    ("Berlin", "10"), ("Hamburg", "20"), ("Munich", "80"), ("Cologne", "50"),
    ("Frankfurt", "60"), ("Stuttgart", "70"), ("Leipzig", "04"), ("Dresden", "01"),
    ("Bremen", "28"), ("Hanover", "30"), ("Nuremberg", "90"), ("Freiburg", "79"),
)
CITY_WEIGHTS = (16, 10, 9, 7, 6, 5, 5, 4, 3, 3, 3, 2)
EMAIL_DOMAINS = ("example.com", "example.org", "example.net")

# category -> (lowest price, highest price, product names)
CATALOGUE = {
    "books": (8, 45, (
        "Designing Data Systems", "The Event Log", "Patterns of Messaging",
        "Clean Streams", "Domain Stories", "The Pragmatic Queue", "Distributed Tea Time",
        "A Field Guide to Logs",
    )),
    "kitchen": (6, 120, (
        "Espresso Cup Set", "Cast Iron Pan", "Chef Knife", "Bamboo Cutting Board",
        "Pour-over Kettle", "Spice Rack", "Salad Spinner",
    )),
    "garden": (4, 90, (
        "Watering Can", "Pruning Shears", "Seed Starter Kit", "Garden Gloves",
        "Bird Feeder", "Compost Bin",
    )),
    "toys": (5, 60, (
        "Wooden Train", "Building Blocks", "Puzzle 1000 Pieces", "Kite",
        "Marble Run", "Plush Fox",
    )),
    "electronics": (12, 250, (
        "USB-C Charger", "Noise-cancelling Headphones", "E-reader", "Bluetooth Speaker",
        "Smart Plug", "Webcam", "Mechanical Keyboard",
    )),
    "stationery": (2, 30, (
        "Dotted Notebook", "Fountain Pen", "Sticky Notes", "Desk Organiser",
        "Wall Planner", "Pencil Set",
    )),
}

QUICK_CANCEL_REASONS = ("changed my mind", "ordered by mistake", "found it cheaper elsewhere")
PAID_CANCEL_REASONS = ("out of stock", "changed my mind", "delivery too slow")
UNPAID_CANCEL_REASON = "payment not received"
UNPAID_TIMEOUT = timedelta(hours=72)

FILES: dict[str, tuple[str, ...]] = {
    "customers.csv": (
        "customer_id", "name", "email", "street", "city", "postcode", "registered_at",
    ),
    "products.csv": ("product_id", "name", "category", "price"),
    "orders.csv": (
        "order_id", "customer_id", "placed_at", "status", "paid_at", "shipped_at",
        "cancelled_at", "cancel_reason",
    ),
    "order_items.csv": ("order_id", "line", "product_id", "quantity", "unit_price"),
    "address_changes.csv": ("customer_id", "changed_at", "street", "city", "postcode"),
}


def iso(moment: datetime | None) -> str:
    """ISO 8601 with an explicit UTC offset, whole seconds: 2026-01-05T09:00:00+00:00."""
    return "" if moment is None else moment.isoformat(timespec="seconds")


def random_moment(rng: random.Random, start: datetime, end: datetime) -> datetime:
    """A moment in [start, end), to the second."""
    return start + timedelta(seconds=rng.randrange(int((end - start).total_seconds())))


def random_address(rng: random.Random) -> tuple[str, str, str]:
    """(street, city, postcode) in one of the cities."""
    city, prefix = rng.choices(CITIES, weights=CITY_WEIGHTS)[0]
    street = f"{rng.choice(STREET_NAMES)} {rng.randint(1, 120)}"
    return street, city, f"{prefix}{rng.randrange(1000):03d}"


def make_customers(rng: random.Random) -> list[dict[str, str | datetime]]:
    """Customers in registration order, so C-0001 is the oldest customer."""
    old = N_CUSTOMERS - N_NEW_CUSTOMERS
    times = sorted(
        [random_moment(rng, HISTORY_START, START - timedelta(hours=1)) for _ in range(old)]
        + [random_moment(rng, START, END - timedelta(days=2)) for _ in range(N_NEW_CUSTOMERS)]
    )
    customers: list[dict[str, str | datetime]] = []
    emails: set[str] = set()
    for number, registered_at in enumerate(times, start=1):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        local = f"{first}.{last}".lower()
        email = f"{local}@{rng.choice(EMAIL_DOMAINS)}"
        suffix = 2
        while email in emails:
            email = f"{local}{suffix}@{email.split('@')[1]}"
            suffix += 1
        emails.add(email)
        street, city, postcode = random_address(rng)
        customers.append({
            "customer_id": f"C-{number:04d}", "name": f"{first} {last}", "email": email,
            "street": street, "city": city, "postcode": postcode,
            "registered_at": registered_at,
        })
    return customers


def make_products(rng: random.Random) -> list[dict[str, str | float]]:
    """The catalogue, numbered P-001.. in category order; prices end in .49 or .99."""
    products: list[dict[str, str | float]] = []
    for category, (low, high, names) in CATALOGUE.items():
        for name in names:
            price = rng.randint(low, high) + rng.choice((0.49, 0.99, 0.99))
            products.append({
                "product_id": f"P-{len(products) + 1:03d}", "name": name,
                "category": category, "price": round(price, 2),
            })
    return products


def make_address_changes(
    rng: random.Random, customers: Sequence[dict[str, str | datetime]]
) -> list[dict[str, str | datetime]]:
    """Some customers move house during the period, a few of them twice."""
    candidates = [c for c in customers if c["registered_at"] < END - timedelta(days=8)]
    movers = rng.sample(candidates, N_MOVERS)
    twice = {m["customer_id"] for m in movers[:N_DOUBLE_MOVERS]}
    changes: list[dict[str, str | datetime]] = []
    for mover in movers:
        earliest = max(START, mover["registered_at"] + timedelta(days=1))  # type: ignore[operator]
        moves = 2 if mover["customer_id"] in twice else 1
        first = random_moment(rng, earliest, END - timedelta(days=4 * moves))
        moments = [first]
        if moves == 2:
            moments.append(random_moment(rng, first + timedelta(days=3), END))
        for moment in moments:
            # People fill in the form during the day: 08:00-21:59 UTC.
            moment = moment.replace(hour=rng.randint(8, 21))
            if moment < earliest:
                moment += timedelta(days=1)
            if moment >= END:
                moment -= timedelta(days=1)
            street, city, postcode = random_address(rng)
            if rng.random() < 0.4:  # moving within the same city
                city = str(mover["city"])
                postcode = str(mover["postcode"])[:2] + postcode[2:]
            changes.append({
                "customer_id": mover["customer_id"], "changed_at": moment,
                "street": street, "city": city, "postcode": postcode,
            })
    changes.sort(key=lambda c: (c["changed_at"], c["customer_id"]))
    return changes


def order_times(rng: random.Random) -> list[datetime]:
    """N_ORDERS moments in the period, following the daily and weekly rhythm."""
    hours = [START + timedelta(hours=h) for h in range(int((END - START).total_seconds()) // 3600)]
    weights = [HOUR_WEIGHTS[h.hour] * DAY_WEIGHTS[h.weekday()] for h in hours]
    picked = rng.choices(hours, weights=weights, k=N_ORDERS)
    return sorted(h + timedelta(seconds=rng.randrange(3600)) for h in picked)


def next_warehouse_slot(moment: datetime) -> datetime:
    """The warehouse ships 07:00-18:59 UTC, Monday to Saturday."""
    while moment.weekday() == 6 or not 7 <= moment.hour < 19:
        if moment.hour >= 19 or moment.weekday() == 6:
            moment = (moment + timedelta(days=1)).replace(hour=7, minute=0, second=0)
        else:
            moment = moment.replace(hour=7, minute=0, second=0)
    return moment


def make_orders(
    rng: random.Random,
    customers: Sequence[dict[str, str | datetime]],
    products: Sequence[dict[str, str | float]],
) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """Orders and their lines, with what happened to each order before END."""
    activity = [rng.lognormvariate(0, 1.0) for _ in customers]
    popularity = [rng.lognormvariate(0, 0.8) for _ in products]
    orders: list[dict[str, object]] = []
    items: list[dict[str, object]] = []
    for number, placed_at in enumerate(order_times(rng), start=1):
        order_id = f"O-{number:05d}"
        # Only customers who registered at least ten minutes earlier can order.
        eligible = [
            i for i, c in enumerate(customers)
            if c["registered_at"] <= placed_at - timedelta(minutes=10)  # type: ignore[operator]
        ]
        who = rng.choices(eligible, weights=[activity[i] for i in eligible])[0]
        n_lines = rng.choices((1, 2, 3, 4, 5), weights=(35, 28, 18, 11, 8))[0]
        chosen: list[int] = []
        while len(chosen) < n_lines:
            p = rng.choices(range(len(products)), weights=popularity)[0]
            if p not in chosen:
                chosen.append(p)
        for line, p in enumerate(chosen, start=1):
            items.append({
                "order_id": order_id, "line": line,
                "product_id": products[p]["product_id"],
                "quantity": rng.choices((1, 2, 3, 4, 5), weights=(70, 18, 7, 3, 2))[0],
                "unit_price": products[p]["price"],
            })

        last_item = placed_at + timedelta(seconds=ITEM_GAP_SECONDS * n_lines)
        paid_at = shipped_at = cancelled_at = None
        reason = ""
        fate = rng.random()
        if fate < 0.03:  # the customer cancels within the hour
            cancelled_at = last_item + timedelta(seconds=rng.randint(60, 3600))
            reason = rng.choice(QUICK_CANCEL_REASONS)
        elif fate < 0.10:  # never paid: cancelled by the shop after the timeout
            cancelled_at = placed_at + UNPAID_TIMEOUT
            reason = UNPAID_CANCEL_REASON
        else:
            paid_at = last_item + timedelta(seconds=int(rng.lognormvariate(5.0, 1.0)) + 30)
            ship = next_warehouse_slot(paid_at + timedelta(minutes=rng.randint(90, 30 * 60)))
            shipped_at = ship + timedelta(minutes=rng.randint(0, 59), seconds=rng.randrange(60))
            if rng.random() < 0.025:  # paid, then cancelled before it ships
                cancelled_at = paid_at + (shipped_at - paid_at) * rng.uniform(0.1, 0.9)
                cancelled_at = cancelled_at.replace(microsecond=0)
                reason = rng.choice(PAID_CANCEL_REASONS)
                shipped_at = None

        # The files are a snapshot at END: nothing later has happened yet.
        paid_at, shipped_at, cancelled_at = (
            t if t is not None and t < END else None for t in (paid_at, shipped_at, cancelled_at)
        )
        if paid_at is None:
            shipped_at = None
        status = (
            "cancelled" if cancelled_at else "shipped" if shipped_at else
            "paid" if paid_at else "placed"
        )
        orders.append({
            "order_id": order_id, "customer_id": customers[who]["customer_id"],
            "placed_at": placed_at, "status": status, "paid_at": paid_at,
            "shipped_at": shipped_at, "cancelled_at": cancelled_at,
            "cancel_reason": reason if cancelled_at else "",
        })
    return orders, items


def cell(value: object) -> str:
    """How one value is written: ISO timestamps, prices with two decimals."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def write_csv(path: Path, columns: Sequence[str], rows: Iterable[dict[str, object]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([cell(row[c]) for c in columns])


def generate(out: Path) -> dict[str, int]:
    """Write every CSV file into ``out``; return the number of rows per file."""
    rng = random.Random(SEED)
    customers = make_customers(rng)
    products = make_products(rng)
    changes = make_address_changes(rng, customers)
    orders, items = make_orders(rng, customers, products)
    tables = {
        "customers.csv": customers, "products.csv": products, "orders.csv": orders,
        "order_items.csv": items, "address_changes.csv": changes,
    }
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in tables.items():
        write_csv(out / name, FILES[name], rows)  # type: ignore[arg-type]
    return {name: len(rows) for name, rows in tables.items()}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent,
        help="folder to write the CSV files into (default: next to this script)",
    )
    args = parser.parse_args(argv)
    for name, count in generate(args.out).items():
        print(f"{args.out / name}: {count} rows")


if __name__ == "__main__":
    main()
