"""The measurement model: HDR histograms, interval records, merging them into a run's result, the
generator's self-check, and the run's outputs (SMP, Fortio, interval log, HTML report)."""

from .aggregate import LiveFigures, RunAggregator, failed_requests
from .compare import CellSummary, Comparison, bootstrap_mean_difference, compare_studies, compare_study, run_metrics
from .fortio import fortio_document
from .histogram import REPORTED_PERCENTILES, DecodedCounts, LatencyHistogram, decode_counts
from .hlog import read_interval_log, write_interval_log
from .interval import ERROR_KINDS, IntervalRecord, decode_record, encode_record
from .outputs import load_run_result, write_run_outputs, write_study_outputs
from .report_html import render_report
from .run_result import ComponentUsage, MeshUsage, RunResult, TimePoint, WorkerSummary
from .smp import SMP_VERSION, smp_document
from .study_json import load_study
from .study_result import StudyResult
from .validity import Verdict, assess

__all__ = [
    "CellSummary",
    "Comparison",
    "ComponentUsage",
    "DecodedCounts",
    "ERROR_KINDS",
    "IntervalRecord",
    "LatencyHistogram",
    "LiveFigures",
    "MeshUsage",
    "REPORTED_PERCENTILES",
    "RunAggregator",
    "RunResult",
    "SMP_VERSION",
    "StudyResult",
    "TimePoint",
    "Verdict",
    "WorkerSummary",
    "assess",
    "bootstrap_mean_difference",
    "compare_studies",
    "compare_study",
    "decode_counts",
    "decode_record",
    "encode_record",
    "failed_requests",
    "fortio_document",
    "load_run_result",
    "load_study",
    "read_interval_log",
    "render_report",
    "run_metrics",
    "smp_document",
    "write_interval_log",
    "write_run_outputs",
    "write_study_outputs",
]
