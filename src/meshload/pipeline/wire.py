"""The Redis side of meshload, in one place: every key, every shape that travels, every timing constant
of the coordinator-worker conversation, and how a Redis URL becomes a client.

Keys (`{run}` is a run id, `{worker}` a worker id):

    meshload:fleet                       hash   worker id -> WorkerInfo (who can take work)
    meshload:worker:{worker}:alive       string worker's liveness, expires after WORKER_ALIVE_TTL_MS
    meshload:worker:{worker}:assign      list   an Assignment, then its Start, for that worker (BLPOP)
    meshload:run:{run}:answers           hash   worker id -> Answer (the share accepted, or why not)
    meshload:run:{run}:records           stream interval records (field "r": `encode_record` bytes)
    meshload:run:{run}:beats             hash   worker id -> RunBeat (heartbeats during the run)
    meshload:run:{run}:coordinator       string the coordinator is alive; expires after COORDINATOR_TTL_MS
    meshload:run:{run}:stop              string present: every worker of the run stops now
    meshload:run:{run}:resume            string a detached run's ResumeInfo (`meshload resume`)
    meshload:results:run:{run}           hash   a finished run's files: file name -> zlib-compressed
                                                bytes, and RESULTS_META_FIELD -> ResultsMeta; expires
    meshload:results:index               sorted set  run id -> when its results expire (Unix ms)

A run starts in two steps, so that no load leaves before every worker agreed to its share: the
coordinator hands each worker its Assignment; each checks it against its own limits and answers;
only when all accepted does each get a Start with the common start instant (when one refused, the
stop key tells the others to drop theirs). The coordinator reads the records stream through the
consumer group `CONSUMER_GROUP`. A record's identity is (worker id, seq) inside the record, so a
record sent twice (a retry after a lost reply) is recognised and counted once by the aggregator.

With an external Redis a run is detached: its workers go on (and publish) when the coordinator
dies, and the run's `ResumeInfo` lets `meshload resume RUN_ID` reattach. The records stream keeps
every entry (acknowledged or not) up to `STREAM_MAXLEN`, so a resumed coordinator re-reads the whole
stream (XRANGE), then its own pending list, then new entries; (worker, seq) keeps each record once.

A run's results (its SMP JSON, and its other files while they are small) stay in Redis after the
run for a while (`--results-ttl`), so that `meshload results get RUN_ID` fetches them from anywhere
that reaches Redis: from outside a cluster whose coordinator's own disk cannot be read.

`WORKER_ACL` and `COORDINATOR_ACL` are the least-privilege Redis ACL rules of the two sides: these
keys, and the commands each side sends; `RESULTS_READER_ACL` is the rule of a user that can only
list and fetch kept results.
"""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import msgspec
import redis
import redis.connection
import redis.exceptions

from ..errors import RedisError

KEY_PREFIX = "meshload"
#: The environment variable that holds the Redis URL (and so its password) of workers and coordinators.
REDIS_URL_ENV = "MESHLOAD_REDIS"

# -- timing of the conversation -------------------------------------------------------------------

#: Workers refresh their run heartbeat and fleet liveness this often.
HEARTBEAT_INTERVAL_S = 0.5
#: A worker whose heartbeat has not changed for this long (while Redis was reachable) is lost.
HEARTBEAT_LIVENESS_S = 3.0
#: A fleet worker's liveness key lives this long without a refresh.
WORKER_ALIVE_TTL_MS = 3_000
#: The coordinator refreshes its key at least every HEARTBEAT_INTERVAL_S; without it for this long,
#: workers consider it gone and stop the run by themselves.
COORDINATOR_TTL_MS = 6_000
#: A worker that cannot reach Redis at all for this long stops its run (its coordinator cannot see it).
WORKER_ORPHAN_S = 30.0
#: Streams are trimmed approximately to this many entries: a bound, never reached by a healthy run
#: (200 workers x 1 record/s = 500 s of backlog).
STREAM_MAXLEN = 100_000
#: Name of the coordinator's consumer group on a run's records stream.
CONSUMER_GROUP = "coordinator"
#: Field of a stream entry holding the record bytes.
RECORD_FIELD = b"r"
#: How long a run's results stay in Redis unless told otherwise (30 days).
DEFAULT_RESULTS_TTL_S = 30 * 24 * 3600.0
#: Field of a results hash holding its `ResultsMeta` (file names never start with a dot).
RESULTS_META_FIELD = ".meta"


# -- keys -----------------------------------------------------------------------------------------


def fleet_key() -> str:
    return f"{KEY_PREFIX}:fleet"


def worker_alive_key(worker_id: str) -> str:
    return f"{KEY_PREFIX}:worker:{worker_id}:alive"


def assignment_key(worker_id: str) -> str:
    return f"{KEY_PREFIX}:worker:{worker_id}:assign"


@dataclass(frozen=True)
class RunKeys:
    """The keys of one run."""

    run_id: str

    @property
    def records(self) -> str:
        return f"{KEY_PREFIX}:run:{self.run_id}:records"

    @property
    def beats(self) -> str:
        return f"{KEY_PREFIX}:run:{self.run_id}:beats"

    @property
    def coordinator(self) -> str:
        return f"{KEY_PREFIX}:run:{self.run_id}:coordinator"

    @property
    def stop(self) -> str:
        return f"{KEY_PREFIX}:run:{self.run_id}:stop"

    @property
    def answers(self) -> str:
        return f"{KEY_PREFIX}:run:{self.run_id}:answers"

    @property
    def resume(self) -> str:
        return f"{KEY_PREFIX}:run:{self.run_id}:resume"

    def all(self) -> tuple[str, ...]:
        return (self.records, self.beats, self.coordinator, self.stop, self.answers, self.resume)


def results_key(run_id: str) -> str:
    return f"{KEY_PREFIX}:results:run:{run_id}"


def results_index_key() -> str:
    return f"{KEY_PREFIX}:results:index"


# -- access control -------------------------------------------------------------------------------

#: Commands a worker sends (with those of a connection's set-up: `open_redis` keeps redis-py's
#: CLIENT SETINFO out of it, which Redis before 7.2 does not even know).
_WORKER_COMMANDS = (
    "ping",
    "select",
    "time",
    "exists",
    "set",
    "del",
    "hset",
    "hdel",
    "blpop",
    "xadd",
    "eval",  # the run heartbeat script: EXISTS and HSET on the run's keys
)
#: Commands a coordinator sends besides a worker's (it may spawn local workers with its own URL).
_COORDINATOR_COMMANDS = (
    "get",
    "hgetall",
    "rpush",
    "info",
    "xgroup|create",
    "xreadgroup",
    "xack",
    "xautoclaim",
    "xrange",  # a resumed coordinator re-reads the whole stream
    # keeping a run's results: HSET (above), then these
    "pexpire",
    "zadd",
    "zremrangebyscore",
)
#: Commands of a user that only reads kept results (`meshload results get/list`).
_RESULTS_READER_COMMANDS = ("ping", "select", "hget", "hgetall", "zrangebyscore")


def _acl_rules(commands: tuple[str, ...], keys: str = f"{KEY_PREFIX}:*") -> str:
    return " ".join([f"resetkeys ~{keys}", "resetchannels", "-@all", *(f"+{c}" for c in commands)])


#: `ACL SETUSER <name> on ><password> <rules>` for a fleet worker's user.
WORKER_ACL = _acl_rules(_WORKER_COMMANDS)
#: The same for a coordinator's user.
COORDINATOR_ACL = _acl_rules(_WORKER_COMMANDS + _COORDINATOR_COMMANDS)
#: The same for a user that can list and fetch kept results, and nothing else.
RESULTS_READER_ACL = _acl_rules(_RESULTS_READER_COMMANDS, keys=f"{KEY_PREFIX}:results:*")


# -- shapes on the wire ---------------------------------------------------------------------------


class WorkerInfo(msgspec.Struct, kw_only=True):
    """What a worker says about itself when it registers in the fleet."""

    id: str
    host: str
    pid: int
    cores: int
    version: str = ""
    once: bool = False  # a worker spawned for one run (it leaves after it)
    node: str = ""  # the Kubernetes node of a worker in a pod (its host is then the pod's name)


class Assignment(msgspec.Struct, kw_only=True, tag="assign"):
    """A worker's share of one run (it answers, then waits for the Start)."""

    run_id: str
    plan_json: str  # `Plan.model_dump_json()`
    index: int  # this worker's share: index of count (`split_plan`)
    count: int
    interval_s: float = 1.0
    # The run goes on when its coordinator dies (an external Redis: `meshload resume` reattaches);
    # only the stop key ends it early.
    detached: bool = False


class Start(msgspec.Struct, kw_only=True, tag="start"):
    """Every worker accepted its share: start at this instant."""

    run_id: str
    start_redis_us: int  # the common start instant, Redis server clock (Unix microseconds)


class Answer(msgspec.Struct, kw_only=True):
    """A worker's answer to its Assignment."""

    accepted: bool
    reason: str = ""  # why not, one sentence for the coordinator's user


class RunBeat(msgspec.Struct, kw_only=True):
    """A worker's heartbeat during a run."""

    beat: int  # increases with every heartbeat; the coordinator watches it change
    clock_offset_ms: float = 0.0  # worker clock minus Redis server clock
    records_sent: int = 0  # records the worker has delivered to the stream so far
    state: str = "waiting"  # waiting | running | flushing | done


class ResumeInfo(msgspec.Struct, kw_only=True):
    """What `meshload resume` needs to reattach to a detached run whose coordinator died."""

    run_id: str
    plan_json: str
    worker_ids: list[str]
    start_redis_us: int  # the common start instant (Redis server clock)
    out_dir: str = ""  # where the dead coordinator wrote its reports (its checkpoints)
    checkpoint_s: float = 0.0  # 0: no checkpoints
    results_ttl_s: float = 0.0
    labels: dict[str, str] = {}


class ResultsMeta(msgspec.Struct, kw_only=True):
    """What a kept run's results are: for `meshload results list` and `get`."""

    run_id: str
    stored_unix_ms: int
    expires_unix_ms: int
    files: dict[str, int]  # file name -> size in bytes (uncompressed), the files kept
    left_out: dict[str, int] = {}  # files of the run too large to keep in Redis, with their sizes
    valid: bool = True
    labels: dict[str, str] = {}


def encode(value: msgspec.Struct) -> bytes:
    return msgspec.msgpack.encode(value)


def decode_assignment(data: bytes | str) -> Assignment | Start:
    return msgspec.msgpack.decode(reply_bytes(data), type=Assignment | Start)


def decode_answer(data: bytes | str) -> Answer:
    return msgspec.msgpack.decode(reply_bytes(data), type=Answer)


def decode_worker_info(data: bytes | str) -> WorkerInfo:
    return msgspec.msgpack.decode(reply_bytes(data), type=WorkerInfo)


def decode_run_beat(data: bytes | str) -> RunBeat:
    return msgspec.msgpack.decode(reply_bytes(data), type=RunBeat)


def decode_resume_info(data: bytes | str) -> ResumeInfo:
    return msgspec.msgpack.decode(reply_bytes(data), type=ResumeInfo)


def decode_results_meta(data: bytes | str) -> ResultsMeta:
    return msgspec.msgpack.decode(reply_bytes(data), type=ResultsMeta)


def reply_text(value: bytes | str) -> str:
    """A key or field name from a reply, as text."""
    return value if isinstance(value, str) else value.decode()


def reply_bytes(value: bytes | str) -> bytes:
    """A reply as the bytes it is: redis-py types replies `bytes | str`, and ours (clients without
    `decode_responses`) are always bytes."""
    if isinstance(value, str):
        raise TypeError("a Redis client with decode_responses=True; meshload's clients read bytes")
    return value


#: A worker's run heartbeat, written only while the run's coordinator key exists (so a beat racing
#: the coordinator's clean-up never re-creates the hash); answers {coordinator alive, stop requested}.
_RUN_BEAT_SCRIPT = """
local alive = redis.call('EXISTS', KEYS[2])
if alive == 1 then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
return {alive, redis.call('EXISTS', KEYS[3])}
"""


def queue_run_beat(pipe: redis.client.Pipeline, keys: RunKeys, worker_id: str, beat: RunBeat) -> None:
    """Queue a run heartbeat on `pipe`; its reply is [coordinator alive (0/1), stop requested (0/1)]."""
    pipe.eval(_RUN_BEAT_SCRIPT, 3, keys.beats, keys.coordinator, keys.stop, worker_id, encode(beat))


# -- clocks ---------------------------------------------------------------------------------------


def redis_time_us(client: redis.Redis) -> int:
    """The Redis server's clock, Unix microseconds."""
    seconds, micros = client.time()
    return int(seconds) * 1_000_000 + int(micros)


def measure_clock_offset_ms(client: redis.Redis, samples: int = 5) -> float:
    """This host's wall clock minus the Redis server's, NTP-style: the server read is taken to
    happen at the midpoint of the round trip, and the sample with the shortest round trip wins."""
    best_rtt_ns = None
    best_offset_ms = 0.0
    for _ in range(samples):
        before_ns = time.time_ns()
        server_us = redis_time_us(client)
        after_ns = time.time_ns()
        rtt_ns = after_ns - before_ns
        if best_rtt_ns is None or rtt_ns < best_rtt_ns:
            best_rtt_ns = rtt_ns
            midpoint_us = (before_ns + after_ns) / 2_000
            best_offset_ms = (midpoint_us - server_us) / 1_000
    return best_offset_ms


def local_monotonic_ns_of(redis_instant_us: int, clock_offset_ms: float) -> int:
    """A Redis-clock instant as a `time.monotonic_ns()` instant of this host."""
    local_wall_ns = redis_instant_us * 1_000 + int(clock_offset_ms * 1_000_000)
    return time.monotonic_ns() + (local_wall_ns - time.time_ns())


# -- connecting -----------------------------------------------------------------------------------


def redacted(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit((parts.scheme, f"{user}:***@{host}", parts.path, parts.query, parts.fragment))


#: No CLIENT SETINFO when a connection opens: one command fewer for the ACL users to allow, and one
#: that Redis before 7.2 does not know. redis-py 7 spells it `driver_info=None`, earlier releases
#: `lib_name=None, lib_version=None`.
_NO_CLIENT_SETINFO: dict[str, None] = (
    {"driver_info": None}
    if "driver_info" in inspect.signature(redis.connection.AbstractConnection.__init__).parameters
    else {"lib_name": None, "lib_version": None}
)


def open_redis(url: str, *, socket_timeout_s: float | None = 5.0, check: bool = True) -> redis.Redis:
    """A client for `url` (redis://, rediss:// for TLS, unix://), checked with PING.

    Raises RedisError with one line (what failed, which URL, what to do) for a bad URL, an
    unreachable server or a refused password.
    """
    try:
        client = redis.Redis.from_url(
            url,
            socket_timeout=socket_timeout_s,
            socket_connect_timeout=5.0,
            health_check_interval=0,
            **_NO_CLIENT_SETINFO,
        )
    except ValueError as exc:
        raise RedisError(
            f"{url!r} is not a Redis URL ({exc}); use redis://[:PASSWORD@]HOST:PORT[/DB], "
            "rediss://... for TLS or unix:///path/to/socket"
        ) from exc
    if check:
        try:
            client.ping()
        except (redis.exceptions.RedisError, OSError) as exc:
            client.close()
            raise translate_redis_error(exc, url) from exc
    return client


def translate_redis_error(exc: BaseException, url: str) -> RedisError:
    """The user's one line for a Redis library error."""
    where = redacted(url)
    text = str(exc)
    # NOAUTH (RESP2) or, with redis-py's HELLO handshake, "HELLO must be called with the client
    # already authenticated": the server wants a password and the URL has none.
    if "NOAUTH" in text or "Authentication required" in text or "already authenticated" in text:
        return RedisError(f"Redis at {where} needs a password; give it in the URL (redis://:PASSWORD@HOST:PORT)")
    if isinstance(exc, redis.exceptions.AuthenticationError) or "WRONGPASS" in text or "invalid password" in text:
        return RedisError(
            f"Redis at {where} refused the password; put the right one in the URL (redis://:PASSWORD@HOST:PORT)"
        )
    if "without any password configured" in text:
        return RedisError(f"Redis at {where} has no password set; remove the password from the URL")
    if isinstance(exc, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)):
        return RedisError(
            f"cannot reach Redis at {where} ({text or type(exc).__name__}); check that it runs and the URL is right"
        )
    return RedisError(f"Redis at {where} failed: {text or type(exc).__name__}")


#: Errors that mean "Redis is unreachable right now; try again" (not a bad request).
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    ConnectionResetError,
    BrokenPipeError,
)
