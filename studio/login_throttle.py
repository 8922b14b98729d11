"""Slowing down password guessing: failed logins per account and per client address, with backoff.

`LoginThrottle` counts failures under two keys, the account name and the client's address. The first
`free_failures` failures of a key cost nothing; each one after that locks the key for twice as long as
the last (1 s, 2 s, 4 s, ... at most `max_lock_s`), and while a key is locked every attempt is refused,
the right password included, before it is checked. A success clears the account's count (not the
address's: one good account must not unlock guessing at others from the same address). Counts fade
after `forget_s` without a failure. The clock is injectable so tests need no sleeps. The ASGI side
(reading the login form, answering 429) lives in `studio.ui.serve`.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable


@dataclass
class _Record:
    failures: int = 0
    locked_until: float = 0.0
    last_failure: float = 0.0


class LoginThrottle:
    def __init__(self, free_failures: int = 5, max_lock_s: float = 900.0, forget_s: float = 3600.0,
                 clock: Callable[[], float] = time.monotonic):
        self.free_failures = free_failures
        self.max_lock_s = max_lock_s
        self.forget_s = forget_s
        self.clock = clock
        self._records: dict[tuple[str, str], _Record] = {}
        self._lock = threading.Lock()

    def _keys(self, user: str, address: str) -> list[tuple[str, str]]:
        return [("user", user.strip().lower()), ("address", address or "?")]

    def _record(self, key: tuple[str, str], now: float) -> _Record:
        record = self._records.get(key)
        if record is None or (record.failures and now - record.last_failure > self.forget_s):
            record = self._records[key] = _Record()
        return record

    def wait_s(self, user: str, address: str) -> float:
        """Seconds until this account may try from this address again (0: now)."""
        now = self.clock()
        with self._lock:
            return max(0.0, max(self._record(k, now).locked_until - now for k in self._keys(user, address)))

    def failed(self, user: str, address: str) -> None:
        now = self.clock()
        with self._lock:
            for key in self._keys(user, address):
                record = self._record(key, now)
                record.failures += 1
                record.last_failure = now
                over = record.failures - self.free_failures
                if over > 0:
                    record.locked_until = now + min(self.max_lock_s, 2.0 ** (over - 1))
            if len(self._records) > 100_000:  # bound the memory a flood of made-up names can take
                self._records = {k: r for k, r in self._records.items() if now - r.last_failure <= self.forget_s}

    def succeeded(self, user: str, address: str) -> None:
        with self._lock:
            self._records.pop(self._keys(user, address)[0], None)
