"""The merged result of one run: what the coordinator (or a standalone run) hands to the reports.

`RunAggregator` (in `aggregate.py`) builds a `RunResult` from interval records; `smp.py`,
`fortio.py`, `hlog.py` and `report_html.py` render one. Histograms cover the measured part of the run
only (warm-up excluded); the warm-up is summarised on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..scenarios.plan import Plan
from .histogram import LatencyHistogram
from .hlog import IntervalLogSpool
from .interval import IntervalRecord

if TYPE_CHECKING:
    from .trends import TrendLine


@dataclass
class WorkerSummary:
    """One worker's part of the run."""

    id: str
    requests: int = 0  # completed responses, measured part
    sent: int = 0
    errors: int = 0
    cpu_seconds: float = 0.0
    spin_seconds: float = 0.0  # of cpu_seconds, polling for planned instants too near to sleep for
    fold_cpu_seconds: float = 0.0  # its fold process's CPU, apart from cpu_seconds (see IntervalRecord)
    clock_offset_ms: float = 0.0
    lost: bool = False  # went silent during the run; its records up to then are kept
    records: int = 0  # interval records received
    host: str = ""  # the machine (in Kubernetes, the pod) the worker ran on
    node: str = ""  # in Kubernetes, the node of its pod
    lag_p99_ms: float = 0.0
    max_cpu_fraction: float = 0.0  # the busiest interval's CPU use (polling excluded), as a fraction of one core
    lost_reason: str = ""  # why it was counted lost ("silent for 3.2s", "its process exited: ...")
    returned: bool = False  # was counted lost (silent: paused, overloaded), then its records came again
    finished: bool = False  # its final record arrived
    missing_records: int = 0  # gaps in its record sequence (records that never reached the coordinator)


@dataclass
class TimePoint:
    """One second of the run, all workers merged (warm-up seconds included, flagged)."""

    offset_s: float
    rate: float  # completed responses per second
    sent_rate: float
    errors: int  # failed requests: transport errors plus responses with status >= 400
    p50_ms: float
    p99_ms: float
    warmup: bool = False
    # The generator's schedule lag in this second (actual send - planned instant): a stall shows here.
    lag_p99_ms: float = 0.0
    lag_max_ms: float = 0.0
    late: int = 0  # sends later than the engine's late threshold


@dataclass
class MinutePoint:
    """One minute of the run, all workers merged: the whole-run view of a long run."""

    offset_s: float
    rate: float  # completed responses per second over the minute (its covered part)
    sent_rate: float
    completed: int
    errors: int
    p50_ms: float
    p99_ms: float
    p999_ms: float
    warmup: bool = False
    late: int = 0


@dataclass
class MeshMinute:
    """The mesh's CPU and memory over one minute of a run, by component (those present)."""

    offset_s: float  # the window's start, seconds after the run's common start
    cpu_mcores: dict[str, float] = field(default_factory=dict)
    mem_mb: dict[str, float] = field(default_factory=dict)


@dataclass
class ComponentUsage:
    """CPU and memory of one kind of mesh component over the run's window."""

    count: int = 0
    cpu_mcores: float = 0.0  # average over the window, all instances together
    mem_mb: float = 0.0  # average resident memory, all instances together
    cpu_mcores_max: float = 0.0
    mem_mb_max: float = 0.0


@dataclass
class MeshUsage:
    """What the mesh cost during the run (None in the result when no sampler ran)."""

    mesh: str = "none"  # "testbed-haproxy", "istio", ...
    function: str = ""  # the traffic-control function in force
    profile: dict[str, str] = field(default_factory=dict)  # its parameters
    mtls_enabled: bool = False
    sidecar: ComponentUsage = field(default_factory=ComponentUsage)
    ingress_gateway: ComponentUsage = field(default_factory=ComponentUsage)
    control_plane: ComponentUsage = field(default_factory=ComponentUsage)
    applications: ComponentUsage = field(default_factory=ComponentUsage)
    proxy_version: str = ""
    mesh_version: str = ""
    topology: str = ""  # where the proxies stand (the local testbed: sidecar, per-node, ingress-only)
    # Requests each replica of a replicated service answered over the measured window, counted by the
    # replicas themselves: {"ratings-grpc": {"ratings-grpc-1": 1500, ...}}. Services that got none
    # are left out; empty when the mesh cannot tell.
    replicas: dict[str, dict[str, int]] = field(default_factory=dict)


@dataclass
class NameSummary:
    """One request name's part of the run (measured part), all workers merged."""

    corrected: LatencyHistogram
    uncorrected: LatencyHistogram
    completed: int = 0  # responses (any status)
    errors: int = 0  # transport errors
    failures: int = 0  # requests the load tool itself counted as failed (Locust's own verdict)


@dataclass
class ReferenceFigures:
    """Figures another tool computed for the same requests (Locust's own statistics), shown beside
    meshload's so the difference is visible. Percentiles are as that tool reports them."""

    source: str  # who computed them and how ("Locust 2.47.0 own statistics: ...")
    requests: int
    failures: int
    percentiles_ms: dict[str, float]  # keys as in `percentiles_ms` ("50", "90", ...)
    mean_ms: float = 0.0
    max_ms: float = 0.0


@dataclass(frozen=True)
class Reason:
    """One reason in a run's verdict: a stable `cause` code (for programs reading smp.json), its
    `effect` on the run (invalid, degraded, or a note that changes neither) and the sentence."""

    cause: str
    effect: str
    message: str


@dataclass
class RunResult:
    run_id: str
    plan: Plan
    started_unix_ms: int  # start of the measured part (after warm-up)
    ended_unix_ms: int
    measured_s: float  # length of the measured part actually covered by records
    corrected: LatencyHistogram  # planned instant -> response
    uncorrected: LatencyHistogram  # actual send -> response
    lag: LatencyHistogram  # actual send - planned instant
    sent: int = 0
    completed: int = 0
    status_codes: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    bytes_received: int = 0
    late: int = 0
    missed: int = 0
    clamped: int = 0  # latencies above the histograms' range (recorded at its top)
    warmup_completed: int = 0
    warmup_s: float = 0.0
    workers: list[WorkerSummary] = field(default_factory=list)
    timeseries: list[TimePoint] = field(default_factory=list)  # per second: the last PER_SECOND_WINDOW_S
    minutes: list[MinutePoint] = field(default_factory=list)  # per minute: the whole run
    mesh_minutes: list[MeshMinute] = field(default_factory=list)  # the mesh per minute (when sampled)
    trends: list[TrendLine] = field(default_factory=list)  # least-squares lines over the minutes
    valid: bool = True
    validity: list[str] = field(default_factory=list)  # reasons the run is invalid or degraded
    degraded: bool = False  # a measurement of less than planned (a worker lost, a partial log)
    # Connections opened in the measured part and their set-up time (connect + TLS), apart from the lag.
    connects: int = 0
    connect_ms_total: float = 0.0
    connect_ms_max: float = 0.0
    reasons: list[Reason] = field(default_factory=list)  # `validity` with each reason's cause and effect
    interrupted: str = ""  # the stop signal (SIGINT, SIGTERM) that ended the run early, if one did
    max_clock_offset_ms: float = 0.0
    mesh: MeshUsage | None = None
    labels: dict[str, str] = field(default_factory=dict)
    records: list[IntervalRecord] = field(default_factory=list)  # for the interval log
    log_spool: IntervalLogSpool | None = None  # a long run's interval log, on disk (then `records` is empty)
    records_dropped: int = 0  # records not kept for the interval log (memory bound reached)
    streams_lost: int = 0  # times Redis lost the records stream mid-run (records not yet read went with it)
    malformed_records: int = 0  # records on the stream that could not be read
    environment: dict[str, object] = field(default_factory=dict)  # cores, load average, versions
    by_name: dict[str, NameSummary] = field(default_factory=dict)  # per request name, when recorded
    reference: ReferenceFigures | None = None  # the load tool's own figures (Locust), when it had any
    # A checkpoint written while the run was still going (`--checkpoint`): its figures so far.
    partial: bool = False

    @property
    def actual_rps(self) -> float:
        return self.completed / self.measured_s if self.measured_s > 0 else 0.0

    @property
    def connect_ms_mean(self) -> float:
        return self.connect_ms_total / self.connects if self.connects else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())
