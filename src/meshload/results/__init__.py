"""The measurement model: HDR histograms, interval records, merging them into a run's result, the
generator's self-check, the run's outputs (SMP, Fortio, interval log, HTML report), and a study's
statistics (paired comparisons, their resolution, A/A calibration, the half-width stopping rule)."""

from .aa_calibration import AACalibration, calibrate_aa
from .aggregate import RunAggregator, failed_requests
from .bootstrap import bootstrap_mean_difference
from .cell_summary import CellSummary, run_metrics
from .compare import Comparison, compare_studies, compare_study, compare_study_paired
from .fortio import fortio_document
from .halfwidth_targets import HalfWidthTarget, parse_halfwidth_targets
from .headline import Estimate, headline_figures
from .histogram import REPORTED_PERCENTILES, DecodedCounts, LatencyHistogram, decode_counts
from .hlog import read_interval_log, write_interval_log
from .interval import ERROR_KINDS, IntervalRecord, decode_record, encode_record
from .live_figures import LiveFigures
from .outputs import load_run_result, write_run_outputs, write_study_outputs
from .paired import PairedComparison
from .report_html import render_report
from .resolution import ResolutionRow, study_resolution
from .run_result import ComponentUsage, MeshUsage, RunResult, TimePoint, WorkerSummary
from .sequential import BlockDecision, decide_more_blocks
from .smp import SMP_VERSION, smp_document
from .study_json import load_study
from .study_result import StudyResult
from .validity import Verdict, assess

__all__ = [
    "AACalibration",
    "BlockDecision",
    "CellSummary",
    "Comparison",
    "ComponentUsage",
    "DecodedCounts",
    "ERROR_KINDS",
    "Estimate",
    "HalfWidthTarget",
    "IntervalRecord",
    "LatencyHistogram",
    "LiveFigures",
    "MeshUsage",
    "PairedComparison",
    "REPORTED_PERCENTILES",
    "ResolutionRow",
    "RunAggregator",
    "RunResult",
    "SMP_VERSION",
    "StudyResult",
    "TimePoint",
    "Verdict",
    "WorkerSummary",
    "assess",
    "bootstrap_mean_difference",
    "calibrate_aa",
    "compare_studies",
    "compare_study",
    "compare_study_paired",
    "decide_more_blocks",
    "decode_counts",
    "decode_record",
    "encode_record",
    "failed_requests",
    "fortio_document",
    "headline_figures",
    "load_run_result",
    "load_study",
    "parse_halfwidth_targets",
    "read_interval_log",
    "render_report",
    "run_metrics",
    "smp_document",
    "study_resolution",
    "write_interval_log",
    "write_run_outputs",
    "write_study_outputs",
]
