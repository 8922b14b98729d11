"""Password guessing is throttled per account and per client address, with backoff; the right password is refused
while locked; the audit log says who was refused."""
from __future__ import annotations

from studio.login_throttle import LoginThrottle

from .conftest import ADMIN, ADMIN_PASSWORD, FakeClock


def test_failures_past_the_free_ones_lock_with_doubling_waits():
    clock = FakeClock()
    throttle = LoginThrottle(free_failures=3, max_lock_s=10, clock=clock)
    for _ in range(3):
        assert throttle.wait_s("ana", "10.0.0.1") == 0
        throttle.failed("ana", "10.0.0.1")
    assert throttle.wait_s("ana", "10.0.0.1") == 0
    waits = []
    for _ in range(6):
        throttle.failed("ana", "10.0.0.1")
        waits.append(throttle.wait_s("ana", "10.0.0.1"))
    assert waits == [1, 2, 4, 8, 10, 10]  # doubling, capped
    assert throttle.wait_s("ANA ", "10.9.9.9") == 10  # the account is locked from any address
    assert throttle.wait_s("luis", "10.0.0.1") == 10  # and the address for any account
    assert throttle.wait_s("luis", "10.9.9.9") == 0
    clock.now += 10
    assert throttle.wait_s("ana", "10.0.0.1") == 0


def test_a_success_clears_the_account_but_not_the_address():
    clock = FakeClock()
    throttle = LoginThrottle(free_failures=1, clock=clock)
    throttle.failed("ana", "10.0.0.1")
    throttle.failed("ana", "10.0.0.1")
    clock.now += 5
    throttle.succeeded("ana", "10.0.0.1")
    throttle.failed("eva", "10.0.0.1")
    assert throttle.wait_s("eva", "10.0.0.2") == 0  # eva's first failure is free
    assert throttle.wait_s("eva", "10.0.0.1") > 0  # but the address has guessed too often


def test_failure_counts_fade_after_a_quiet_hour():
    clock = FakeClock()
    throttle = LoginThrottle(free_failures=2, clock=clock)
    for _ in range(2):
        throttle.failed("ana", "a")
    clock.now += 3601
    throttle.failed("ana", "a")
    assert throttle.wait_s("ana", "a") == 0


def test_thirty_wrong_passwords_are_throttled_and_the_right_one_waits_too(served):
    client = served.client()
    codes = [client.http.post("/login", data={"username": ADMIN, "password": f"guess-{n}"}).status_code
             for n in range(30)]
    assert codes[:5] == [400] * 5  # the first few are just wrong
    assert codes[5] == 400 and set(codes[6:]) == {429}  # then every attempt is refused before it is checked
    locked = client.http.post("/login", data={"username": ADMIN, "password": ADMIN_PASSWORD})
    assert locked.status_code == 429 and "try again in" in locked.json()["detail"]
    served.clock.now += 3600
    assert client.http.post("/login", data={"username": ADMIN, "password": ADMIN_PASSWORD}).status_code == 200
    outcomes = [e["outcome"] for e in served.engine.access.audit.entries(user=ADMIN)]
    assert "throttled" in outcomes and "wrong password" in outcomes
