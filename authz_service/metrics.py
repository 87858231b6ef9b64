"""Prometheus metrics (prometheus-client), in a registry of their own that ``create_app`` makes (two apps
in one process, as in the tests, never share or collide). Under gunicorn, PROMETHEUS_MULTIPROC_DIR makes
every worker write its values to a shared folder and ``/metrics`` sums them; ``serve`` sets it up before
the workers start. prometheus-client picks its multi-process mode when it is first imported, so this
module is imported by ``create_app`` (or a ``Service`` made without one), never at the package's import.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):  # what the default registry shows
            self.registry.register(collector)
        self.decisions = Counter("authz_decisions_total", "Decisions made", ["result"], registry=self.registry)
        self.requests = Histogram(
            "authz_http_request_duration_seconds",
            "HTTP request duration",
            ["method", "endpoint", "status"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )
        # 1: the CPAS's audit chain has a broken link; 0: it was whole when last checked. Only chains this
        # process checked appear; under gunicorn the most recent check of any worker wins
        self.audit_chain_broken = Gauge(
            "authz_audit_chain_broken",
            "Whether the last check of a CPAS's audit chain found a broken link (cpas=\"none\": rows without a CPAS)",
            ["cpas"],
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )

    def audit_chain_checked(self, cpas: str | None, broken: bool) -> None:
        self.audit_chain_broken.labels(cpas or "none").set(1 if broken else 0)

    def render(self) -> tuple[bytes, str]:
        """The text ``/metrics`` answers: this process's values, or every worker's under gunicorn."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
