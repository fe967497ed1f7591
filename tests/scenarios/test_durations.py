"""Durations: what people type, and what Go prints (the SMP `duration` field)."""

from __future__ import annotations

import pytest

from meshload.errors import UsageError
from meshload.scenarios import format_duration, parse_duration_s


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1m30s", 90.0),
        ("1h30m", 5400.0),
        ("250ms", 0.25),
        ("1.5s", 1.5),
        (".5s", 0.5),
        ("90", 90.0),
        ("2.5", 2.5),
        ("500us", 0.0005),
        ("500µs", 0.0005),
        ("100ns", 1e-7),
        (" 10s ", 10.0),
        ("0", 0.0),
        (45, 45.0),
        (0.75, 0.75),
    ],
)
def test_parse_duration_accepts_go_units_sequences_and_bare_seconds(text: str | float, seconds: float) -> None:
    assert parse_duration_s(text, option="--duration") == pytest.approx(seconds, abs=1e-12)


@pytest.mark.parametrize("text", ["5x", "", "s", "1h 30m", "-1s", "1.2.3s", "10 s", "ten seconds", "1d"])
def test_a_bad_duration_is_one_line_naming_the_option(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_duration_s(text, option="--warmup")
    message = str(caught.value)
    assert message == f'--warmup: "{text}" is not a duration; use e.g. 30s, 5m, 1h'
    assert "\n" not in message


def test_bad_non_text_durations_are_refused() -> None:
    with pytest.raises(UsageError, match=r"--duration: .*negative"):
        parse_duration_s(-3, option="--duration")
    with pytest.raises(UsageError, match="--duration"):
        parse_duration_s(True, option="--duration")


@pytest.mark.parametrize(
    ("seconds", "go_text"),
    [
        (0, "0s"),
        (30, "30s"),
        (90, "1m30s"),
        (300, "5m0s"),
        (3600, "1h0m0s"),
        (5400, "1h30m0s"),
        (3661.5, "1h1m1.5s"),
        (1.5, "1.5s"),
        (0.25, "250ms"),
        (0.0015, "1.5ms"),
        (2e-6, "2µs"),
        (5e-9, "5ns"),
        (-90, "-1m30s"),
    ],
)
def test_format_duration_prints_as_go_does(seconds: float, go_text: str) -> None:
    assert format_duration(seconds) == go_text


@pytest.mark.parametrize("seconds", [0.001, 0.25, 1, 59.999, 60, 61.25, 3599, 3600, 86400 + 0.5])
def test_formatted_durations_parse_back_to_the_same_length(seconds: float) -> None:
    assert parse_duration_s(format_duration(seconds), option="x") == pytest.approx(seconds, abs=1e-9)
