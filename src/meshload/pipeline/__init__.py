"""The Redis protocol both sides speak: the key layout and record shapes on the wire (`wire`), the
worker's side that delivers interval records (`publisher.RecordPublisher`) and the coordinator's side
that reads them through a consumer group (`collector.StreamCollector`); and a finished run's files kept
in Redis for a while (`results_store`)."""

from .collector import StreamCollector
from .publisher import RecordPublisher
from .results_store import KeptResults, fetch_results, keep_results, list_results

__all__ = ["KeptResults", "RecordPublisher", "StreamCollector", "fetch_results", "keep_results", "list_results"]
