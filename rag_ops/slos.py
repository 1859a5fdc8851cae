"""The service level objectives and alert thresholds of `dashboards/slos.yaml`, read into
typed objects the rule and dashboard generators share, so that a threshold lives in one place.
"""

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

REPOSITORY = Path(__file__).resolve().parents[1]
SLO_FILE = REPOSITORY / "dashboards" / "slos.yaml"
# A Prometheus duration as the rules use it: 5m, 1h, 30d.
_DURATION = re.compile(r"^\d+[smhdw]$")


def _duration(value: str) -> str:
    if not _DURATION.match(value):
        raise ValueError(f"{value!r} is not a Prometheus duration such as 5m, 1h or 30d")
    return value


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Availability(Frozen):
    objective: float = Field(gt=0, lt=1)
    routes: tuple[str, ...]


class Latency(Frozen):
    name: str
    route: str
    threshold_seconds: float = Field(gt=0)
    objective: float = Field(gt=0, lt=1)


class Freshness(Frozen):
    threshold_seconds: float = Field(gt=0)
    objective: float = Field(gt=0, lt=1)
    sla_seconds: float = Field(gt=0)


class Erasure(Frozen):
    max_age_hours: float = Field(gt=0)


class Evaluation(Frozen):
    max_age_hours: float = Field(gt=0)


class Cost(Frozen):
    budget_per_1000_queries: float = Field(gt=0)
    currency: str


class BurnRate(Frozen):
    """One alert of a multi-window pair: fires when the error budget burns `burn_rate` times
    faster than the window allows over both `long_window` and `short_window`."""

    severity: Literal["page", "ticket"]
    long_window: str
    short_window: str
    burn_rate: float = Field(gt=0)
    for_: str = Field(alias="for")

    _windows = field_validator("long_window", "short_window", "for_")(_duration)


class AlertThresholds(Frozen):
    consumer_lag_events: int = Field(gt=0)
    dead_letters_window: str
    index_stale_minutes: int = Field(gt=0)
    llm_fallback_ratio: float = Field(gt=0, lt=1)

    _window = field_validator("dead_letters_window")(_duration)


class Objectives(Frozen):
    window: str
    availability: Availability
    latency: tuple[Latency, ...]
    freshness: Freshness
    erasure: Erasure
    evaluation: Evaluation
    cost: Cost
    burn_rates: tuple[BurnRate, ...]
    alerts: AlertThresholds

    _window = field_validator("window")(_duration)


def load_objectives(path: Path = SLO_FILE) -> Objectives:
    """The objectives in `path`; a malformed file raises pydantic's ValidationError, naming
    the field."""
    return Objectives.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
