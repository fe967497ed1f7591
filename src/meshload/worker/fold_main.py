"""`python -m meshload.worker.fold_main`: the process an engine starts to fold its histograms
(`fold_process`). It starts in a third of the time a plain import would take: the modules of
`meshload.results` it needs (the histogram and the record) are imported without the package's
`__init__`, which imports every output format and statistic (0.6 s of CPU against 0.3 s for the rest,
spent while the run starts, on the core the target may share)."""

import importlib.util
import sys


def _results_package_without_its_init() -> None:
    spec = importlib.util.find_spec("meshload.results")
    assert spec is not None
    sys.modules["meshload.results"] = importlib.util.module_from_spec(spec)  # its modules import as usual


_results_package_without_its_init()

from meshload.worker.fold_process import main  # noqa: E402  (after the package above, on purpose)

raise SystemExit(main())
