"""`meshload.interrupts` with real signals sent to this process: outside `deferred()` a stop signal
raises at once; inside, the first is noted for the loop to take, a second raises at once (a user can
always force the stop), and one left untaken raises on leaving; the handlers are restored after."""

from __future__ import annotations

import os
import signal

import pytest

from meshload import interrupts


def _signal_self(signum: int) -> None:
    # A signal to this process is delivered before kill() returns; Python runs its handler right after.
    os.kill(os.getpid(), signum)


def test_a_stop_signal_outside_the_measuring_loop_raises_with_the_shells_exit_code() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with interrupts.catching(), pytest.raises(interrupts.Interrupted) as caught:
        _signal_self(signal.SIGTERM)
    assert caught.value.exit_code == 143 and caught.value.name == "SIGTERM"
    assert isinstance(caught.value, KeyboardInterrupt)  # every `finally` on the way out runs as for Ctrl-C
    assert signal.getsignal(signal.SIGTERM) is before


def test_inside_the_loop_the_first_signal_is_taken_and_a_second_one_forces_the_stop() -> None:
    with interrupts.catching():
        with interrupts.deferred():
            _signal_self(signal.SIGINT)
            assert interrupts.pending() == signal.SIGINT
            assert interrupts.take() == signal.SIGINT
            assert interrupts.pending() is None
            with pytest.raises(interrupts.Interrupted) as caught:
                _signal_self(signal.SIGINT)
        assert caught.value.exit_code == 130


def test_a_signal_nobody_took_raises_on_leaving_the_loop() -> None:
    with interrupts.catching(), pytest.raises(interrupts.Interrupted) as caught:
        with interrupts.deferred():
            _signal_self(signal.SIGTERM)
        pytest.fail("not reached: leaving deferred() raises")
    assert caught.value.signum == signal.SIGTERM


def test_without_catching_nothing_is_pending() -> None:
    with interrupts.deferred():
        assert interrupts.pending() is None and interrupts.take() is None
