"""The per-client replay budget (agent/budget.py): pure logic on a fake clock."""

from agent.budget import ReplayBudget


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_one_at_a_time_charged_what_it_sent_and_refilled():
    clock = Clock()
    b = ReplayBudget(burst=1000, rate=100, clock=clock)
    assert b.try_start()
    assert not b.try_start()  # one queued or running at a time
    b.charge(400)
    assert b.try_start()
    b.charge(2600)  # a deep replay overdraws once: balance -2000
    assert not b.try_start() and abs(b.retry_after_s() - 20.01) < 1e-6
    clock.t += 19.9
    assert not b.try_start()
    clock.t += 0.2
    assert b.try_start()
    b.charge(0)
    clock.t += 1000
    assert b.balance() == 1000  # never above the burst
