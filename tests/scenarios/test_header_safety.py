"""A header that would split the request (CR, LF or NUL in its value, or a name that is not a token) is
refused where the plan is made, with one line naming it: on the command line, in a plan file (with
its line), and in a Plan built any other way. It never reaches a socket."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from meshload.errors import PlanError, UsageError
from meshload.scenarios.files import load_plan_file
from meshload.scenarios.options import plan_from_options
from meshload.scenarios.plan import Plan


@pytest.mark.parametrize(
    ("header", "what"),
    [
        ("X-A: one\r\nHost: evil", "carriage return (CR)"),
        ("X-A: one\nX-B: two", "line feed (LF)"),
        ("X-A: one\x00two", "NUL character"),
    ],
)
def test_command_line_header_with_a_line_break_is_refused(header: str, what: str) -> None:
    with pytest.raises(UsageError) as refused:
        plan_from_options("http://127.0.0.1:9/", None, rate=5, headers=[header])
    message = str(refused.value)
    assert message.startswith("-H/--header: the value of header 'X-A' holds") and what in message
    assert "\n" not in message


def test_plan_file_header_and_cookie_with_a_line_break_point_at_their_line(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text('url: http://127.0.0.1:9/\nload: {rate: 5}\nduration: 1s\nheaders:\n  X-Evil: "a\\r\\nB: c"\n')
    with pytest.raises(PlanError) as refused:
        load_plan_file(plan)
    assert str(refused.value) == (
        f"{plan}:4: headers: the value of header 'X-Evil' holds a carriage return (CR), which would split "
        "the request; remove it"
    )
    targets = tmp_path / "targets.yaml"
    targets.write_text(
        "targets:\n  - url: http://127.0.0.1:9/a\n  - url: http://127.0.0.1:9/b\n"
        '    headers: {"Bad Name": x}\nload: {rate: 5}\nduration: 1s\n'
    )
    with pytest.raises(PlanError, match=r"targets.yaml:4: .*header name 'Bad Name' is not a token"):
        load_plan_file(targets)
    cookies = tmp_path / "cookies.yaml"
    cookies.write_text('url: http://127.0.0.1:9/\nload: {rate: 5}\nduration: 1s\ncookies: {s: "a\\nb"}\n')
    with pytest.raises(PlanError, match=r"cookies.yaml:4: cookies: .*line feed"):
        load_plan_file(cookies)


def test_a_plan_built_directly_refuses_it_too() -> None:
    with pytest.raises(ValidationError, match="holds a line feed"):
        Plan(
            targets=[{"url": "http://127.0.0.1:9/", "headers": {"A": "x\ny"}}],
            load={"kind": "open", "rate": 1},
            duration_s=1,
        )
    fine = Plan(
        targets=[{"url": "http://127.0.0.1:9/"}],
        headers={"A": "x y\tz"},
        load={"kind": "open", "rate": 1},
        duration_s=1,
    )
    assert fine.headers == {"A": "x y\tz"}  # spaces and tabs inside a value are allowed
