"""A few Prometheus counters and gauges, rendered in the text exposition format."""

from __future__ import annotations

import dataclasses
from collections import Counter


@dataclasses.dataclass
class Metrics:
    http_requests: Counter[tuple[str, int]] = dataclasses.field(default_factory=Counter)
    case_events: Counter[str] = dataclasses.field(default_factory=Counter)

    def observe_request(self, method: str, status: int) -> None:
        self.http_requests[(method, status)] += 1

    def render(self, gauges: dict[str, float]) -> str:
        lines = [
            "# HELP cityhub_http_requests_total HTTP requests by method and status.",
            "# TYPE cityhub_http_requests_total counter",
        ]
        for (method, status), n in sorted(self.http_requests.items()):
            lines.append(f'cityhub_http_requests_total{{method="{method}",status="{status}"}} {n}')
        lines += [
            "# HELP cityhub_case_events_total Case events committed by this process, by action.",
            "# TYPE cityhub_case_events_total counter",
        ]
        for action, n in sorted(self.case_events.items()):
            lines.append(f'cityhub_case_events_total{{action="{action}"}} {n}')
        for name, value in sorted(gauges.items()):
            lines.append(f"# TYPE {name} gauge")
            lines.append(f"{name} {value}")
        return "\n".join(lines) + "\n"
