"""The CLI's bad-input contract, as tests check it: exit code 2 and exactly one `error:` line."""

from __future__ import annotations

import pytest

from meshload.cli import main


def one_error_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run the CLI on `argv`, which must fail as bad input; its one `error:` line."""
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, lines
    return lines[0]
