"""The Redis protocol both sides speak: the key layout and record shapes on the wire (`wire`), the
worker's side that delivers interval records (`publisher.RecordPublisher`) and the coordinator's side
that reads them through a consumer group (`collector.StreamCollector`)."""

from .collector import StreamCollector
from .publisher import RecordPublisher

__all__ = ["RecordPublisher", "StreamCollector"]
