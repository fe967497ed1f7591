"""One real testbed per test module (module scope); tests switch functions with `apply`."""

from __future__ import annotations

import pytest

from meshload.testbed import Testbed
from meshload.testbed.processes import marked_processes


@pytest.fixture(scope="module")
def testbed(tmp_path_factory):
    bed = Testbed(tmp_path_factory.mktemp("tb"))
    bed.up("sidecar", fault_scale=1.0)
    state = bed.folder.load()
    assert state is not None
    mark = state["mark"]
    yield bed
    assert bed.down() == []
    assert marked_processes(mark) == [], "down left testbed processes behind"
