"""Drive the simulation: backfill history, then live traffic in real time, until stopped or a duration ends."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from ingestion.simulator.incidents import KINDS, Incident, incident_schedule
from ingestion.simulator.otlp import OtlpSender, probe
from ingestion.simulator.traffic import TrafficModel

FLUSH_EVERY_S = 2.0
BACKFILL_FLUSH_SPANS = 2000


@dataclass
class SimulationConfig:
    url: str
    key: str
    seed: int = 7
    rate: float = 0.5  # calls per second on average (daily cycle around it), in history and live alike
    backfill_days: float = 0.0
    duration_s: float | None = None  # live traffic for this long; None = until stopped
    incidents: tuple[str, ...] = KINDS
    speed: float = 1.0
    cycles: int = 1000  # incident cycles to schedule in live mode (effectively forever)


@dataclass
class SimulationStats:
    backfilled: int = 0
    live: int = 0
    schedule: list[Incident] = field(default_factory=list)


class Simulation:
    def __init__(
        self, config: SimulationConfig, stop: threading.Event | None = None, log: Callable[[str], None] = print
    ) -> None:
        self.config = config
        self.stop = stop or threading.Event()
        self.log = log
        self.stats = SimulationStats()
        self._senders: set[OtlpSender] = set()
        self._senders_lock = threading.Lock()

    def _sender(self, timeout: float) -> OtlpSender:
        sender = OtlpSender(self.config.url, self.config.key, timeout=timeout)
        with self._senders_lock:
            self._senders.add(sender)
        return sender

    def _release(self, sender: OtlpSender) -> None:
        with self._senders_lock:
            self._senders.discard(sender)
        sender.close()

    def interrupt(self) -> None:
        """Stop now: set the stop flag and abort exports waiting on retries (the server may be gone)."""
        self.stop.set()
        with self._senders_lock:
            senders = list(self._senders)
        for sender in senders:
            sender.exporter.shutdown()

    def probe(self) -> None:
        probe(self.config.url, self.config.key)

    def schedule(self, origin: datetime) -> list[Incident]:
        c = self.config
        return incident_schedule(c.seed, origin, c.incidents, c.speed, cycles=c.cycles)

    def backfill(
        self, start: datetime, end: datetime, on_progress: Callable[[datetime], None] | None = None,
        incidents: list[Incident] | None = None,
    ) -> int:
        """Send history for ``[start, end)`` minute by minute, oldest first; returns spans sent.

        History has no incidents unless given: end-to-end tests replay a schedule anchored in the past, e.g.
        ``sim.backfill(now - 7d, now, incidents=incident_schedule(seed, origin=now - 3h, speed=2))``.
        """
        # Seeded by the range too, so consecutive chunks of history are not copies of each other.
        model = TrafficModel(self.config.seed * 1_000_003 + int(start.timestamp() // 60), incidents=incidents or [])
        sender = self._sender(timeout=60)
        minute = start.replace(second=0, microsecond=0)
        sent = 0
        try:
            while minute < end and not self.stop.is_set():
                sender.record(model.minute(minute, self.config.rate))
                minute += timedelta(minutes=1)
                if sender.pending() >= BACKFILL_FLUSH_SPANS or minute >= end:
                    sent += sender.flush()
                    self.stats.backfilled = sent
                    if on_progress is not None:
                        on_progress(minute)
            if sender.pending() and not self.stop.is_set():
                sent += sender.flush()
                if on_progress is not None:
                    on_progress(minute)
        finally:
            self._release(sender)
        self.stats.backfilled = sent
        return sent

    def live(self, origin: datetime | None = None) -> int:
        """Real-time traffic with the incident schedule anchored at ``origin`` (default: now)."""
        origin = origin or datetime.now(UTC)
        schedule = self.schedule(origin)
        self.stats.schedule = schedule
        for incident in schedule[: len(self.config.incidents)]:
            self.log(f"incident {incident.kind}: {incident.starts_at:%H:%M}-{incident.ends_at:%H:%M} UTC, "
                     f"{incident.description}")
        model = TrafficModel(self.config.seed * 1000 + 2, incidents=schedule)
        sender = self._sender(timeout=15)
        deadline = None if self.config.duration_s is None else time.monotonic() + self.config.duration_s
        window = datetime.now(UTC)
        try:
            while not self.stop.is_set() and (deadline is None or time.monotonic() < deadline):
                self.stop.wait(FLUSH_EVERY_S)
                now = datetime.now(UTC)
                sender.record(model.minute(window, self.config.rate, seconds=(now - window).total_seconds()))
                window = now
                self.stats.live += sender.flush()
        finally:
            self._release(sender)
        return self.stats.live

    def run(self) -> SimulationStats:
        """Backfill ``backfill_days`` up to now, then live traffic (the ``simulate`` command; probe first)."""
        now = datetime.now(UTC)
        if self.config.backfill_days > 0:
            started = time.monotonic()
            self.backfill(now - timedelta(days=self.config.backfill_days), now)
            self.log(f"backfilled {self.stats.backfilled} spans over {self.config.backfill_days:g} days "
                     f"in {time.monotonic() - started:.0f} s")
        if self.config.duration_s != 0:
            self.live(origin=now)
        return self.stats
