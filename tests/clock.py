"""One injected instant for a service under test: the engine's decisions (``engine.wall``), the use cases'
"today" (``Service.now``) and, when asked, the history's rows (``Database.history_clock``). It moves only
when the test says so: no test sleeps or reads the wall clock to see time pass."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from authz_service.terms import brussels_day


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def attach(self, service: Any, *, history: bool = True) -> Clock:
        service.engine.wall = self.wall
        if history:
            service.db.history_clock = self.moment
        return self

    def wall(self) -> float:
        return self.now.timestamp()

    def moment(self) -> datetime:
        return self.now

    def set(self, at: datetime) -> None:
        self.now = at

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)

    @property
    def today(self) -> date:
        """The Brussels date of the instant."""
        return brussels_day(self.now)
