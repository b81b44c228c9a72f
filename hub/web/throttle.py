"""Login rate limiting: a sliding window of failures per key (pure; time comes in as ``now``).

Keys are the username and the client address, each limited on its own, so that one address cannot
guess many users' passwords and many addresses cannot guess one user's. A success clears the
username's failures. Memory is bounded: at most ``max_keys`` keys are tracked (oldest dropped).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field


@dataclass
class LoginLimiter:
    max_failures: int = 5
    window: float = 300.0
    max_keys: int = 100_000
    _failures: OrderedDict[str, deque[float]] = field(default_factory=OrderedDict)

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._failures.get(key)
        if q is None:
            return deque()
        while q and q[0] <= now - self.window:
            q.popleft()
        if not q:
            del self._failures[key]
        return q

    def retry_after(self, keys: tuple[str, ...], now: float) -> int:
        """Seconds until a login attempt for any of ``keys`` is allowed again (0: allowed now)."""
        wait = 0.0
        for key in keys:
            q = self._recent(key, now)
            if len(q) >= self.max_failures:
                wait = max(wait, q[-self.max_failures] + self.window - now)
        return int(wait) + 1 if wait > 0 else 0

    def failed(self, keys: tuple[str, ...], now: float) -> None:
        for key in keys:
            q = self._failures.pop(key, None) or deque(maxlen=self.max_failures * 4)
            q.append(now)
            self._failures[key] = q
        while len(self._failures) > self.max_keys:
            self._failures.popitem(last=False)

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)
