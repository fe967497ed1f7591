"""The coordinator: runs (one plan, many workers, one merged result) and studies (every function ×
load level × repetition against its baseline), with the mesh adapters and resource sampling; worker
placement, on a Kubernetes fleet too (`KubernetesFleet`); and the schedule server."""

from .k8s_placement import KubernetesFleet
from .run import RunOptions, execute_run
from .scheduler import Scheduler
from .study import StudyOptions, run_study

__all__ = ["KubernetesFleet", "RunOptions", "Scheduler", "StudyOptions", "execute_run", "run_study"]
