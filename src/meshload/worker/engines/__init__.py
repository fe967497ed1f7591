"""Request engines: each runs one worker's share of a plan and emits interval records."""

from .auto import run_share
from .base import Engine, EngineOutcome, RecordSink

__all__ = ["Engine", "EngineOutcome", "RecordSink", "run_share"]
