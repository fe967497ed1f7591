"""The history of runs and studies: the results store (SQLite or PostgreSQL), the trend of a plan's
runs with its regression mark, and the schedules that fire meshload commands."""

from .records import HistoryRecord, record_from_run, record_from_run_folder, records_from_study
from .schedules import Firing, Schedule
from .store import ResultStore, StoreError, open_store
from .trend import RegressionRule, TrendPoint, assess_history
from .trend_report import render_trend

__all__ = [
    "Firing",
    "HistoryRecord",
    "RegressionRule",
    "ResultStore",
    "Schedule",
    "StoreError",
    "TrendPoint",
    "assess_history",
    "open_store",
    "record_from_run",
    "record_from_run_folder",
    "records_from_study",
    "render_trend",
]
