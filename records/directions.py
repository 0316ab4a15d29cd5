"""Hospital directions a coordinator may consider for an area: a small table the operators
edit (records/hospital_directions.csv).
It is a matching aid for coordinators only; patients are never promised a hospital or doctor."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from pathlib import Path

DEFAULT_TABLE = Path(__file__).with_name("hospital_directions.csv")


@dataclass(frozen=True)
class Direction:
    area: str
    hospital: str
    city: str
    strength_en: str
    strength_zh: str


@cache
def load(path: Path = DEFAULT_TABLE) -> tuple[Direction, ...]:
    with path.open(encoding="utf-8", newline="") as table:
        return tuple(
            Direction(**{key: (value or "").strip() for key, value in row.items()})
            for row in csv.DictReader(table)
        )


def for_area(area: str, path: Path = DEFAULT_TABLE) -> tuple[Direction, ...]:
    return tuple(d for d in load(path) if d.area == area)
