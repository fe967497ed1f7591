"""Request engines: each runs one worker's share of a plan and emits interval records.

The contract is in `base.py`; `auto.py` picks the engine for a plan (one line per engine); each
engine is one module (`uvloop_http.py`: HTTP/1.1 on uvloop)."""

from .auto import ENGINES, Registration, event_loop_for, pick_engine, registration_for
from .base import Engine, EngineJob, EngineOutcome, EventLoop, RecordSink, StopSignal

__all__ = [
    "ENGINES",
    "Engine",
    "EngineJob",
    "EngineOutcome",
    "EventLoop",
    "RecordSink",
    "Registration",
    "StopSignal",
    "event_loop_for",
    "pick_engine",
    "registration_for",
]
