"""What load to send: plans (HTTP/1.1, HTTP/2 or gRPC targets, or a locustfile's users), load models,
plan files and built-in scenarios, how a plan's arrival schedule is split across workers so that their
union is exactly the process asked for, how many workers from where (`N` or `k8s:N`), and study plans
(which functions, load levels and repetitions a study runs)."""

from .durations import format_duration, parse_duration_s
from .files import builtin_scenario, list_builtin, load_plan_file
from .grpc_calls import GrpcCall, grpc_calls
from .grpc_target import GrpcTarget, parse_grpc_url
from .options import parse_headers, parse_labels, plan_from_options
from .plan import Arrival, ClosedLoop, GrpcSchema, LoadModel, LocustUsers, OpenLoop, Plan, Protocol, Stage, Target
from .schedule import ArrivalSchedule, RateCurve, WorkerShare, split_plan
from .study_arms import FunctionSpec
from .study_file import builtin_study, load_study_plan
from .study_plan import StudyCell, StudyPlan
from .worker_count import WorkerCount, parse_worker_count

__all__ = [
    "Arrival",
    "ArrivalSchedule",
    "ClosedLoop",
    "FunctionSpec",
    "GrpcCall",
    "GrpcSchema",
    "GrpcTarget",
    "LoadModel",
    "LocustUsers",
    "OpenLoop",
    "Plan",
    "Protocol",
    "RateCurve",
    "Stage",
    "StudyCell",
    "StudyPlan",
    "Target",
    "WorkerCount",
    "WorkerShare",
    "builtin_scenario",
    "builtin_study",
    "format_duration",
    "grpc_calls",
    "list_builtin",
    "load_plan_file",
    "load_study_plan",
    "parse_duration_s",
    "parse_grpc_url",
    "parse_headers",
    "parse_labels",
    "parse_worker_count",
    "plan_from_options",
    "split_plan",
]
