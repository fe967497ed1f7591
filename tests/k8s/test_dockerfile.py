"""The image the chart runs by default: built from this tree with every runtime extra, as the chart's
non-root user, with `meshload` as entry point. (No Docker engine here: hadolint checks it in
test_chart_check.py; the build itself is not run.)"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1]) for text in logical]


def _final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    last_from = max(index for index, (name, _) in enumerate(instructions) if name == "FROM")
    return instructions[last_from:]


def test_the_image_is_slim_python_non_root_with_meshload_as_entry_point() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    values = yaml.safe_load((REPO / "k8s/meshload/values.yaml").read_text())
    instructions = _instructions(REPO / "Dockerfile")
    final = _final_stage(instructions)
    base = final[0][1]
    match = re.fullmatch(r"python:3\.(\d+)-slim(-\w+)?", base)
    assert match, base
    found = re.search(r">=3\.(\d+)", project["requires-python"])
    assert found is not None
    minimum = int(found.group(1))
    assert int(match.group(1)) >= minimum
    users = [args for name, args in final if name == "USER"]
    ids = values["securityContext"]
    assert users == [f"{ids['runAsUser']}:{ids['runAsGroup']}"]  # numeric, so runAsNonRoot can verify it
    assert ids["runAsUser"] != 0
    assert json.loads(dict(final)["ENTRYPOINT"]) == ["meshload"]
    assert not any(name == "ADD" for name, _ in instructions)


def test_the_image_installs_this_tree_with_every_runtime_extra() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    instructions = _instructions(REPO / "Dockerfile")
    copied = [args.split()[:-1] for name, args in instructions if name == "COPY" and "--from" not in args]
    for sources in copied:
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: not in the repository"
    assert [args.split() for name, args in instructions if name == "COPY"][1] == ["src", "./src"]
    [wheel] = [args for name, args in instructions if name == "RUN" and "pip wheel" in args]
    found = re.search(r'"\.\[([^\]]*)\]"', wheel)
    assert found is not None
    extras = found.group(1).split(",")
    assert sorted(extras) == sorted(set(project["optional-dependencies"]) - {"test"})
    chart = yaml.safe_load((REPO / "k8s/meshload/Chart.yaml").read_text())
    assert chart["appVersion"] == project["version"]  # the chart's default image tag is this version


def test_the_build_context_leaves_out_what_the_image_does_not_need() -> None:
    ignored = {
        line.strip() for line in (REPO / ".dockerignore").read_text().splitlines() if line.strip() and line[0] != "#"
    }
    assert {".git", ".venv", "tests", "k8s", "runs", "studies"} <= ignored
    assert not {"src", "pyproject.toml", "README.md"} & ignored
