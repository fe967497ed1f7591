# cython: language_level=3, freethreading_compatible=False
"""What runs once per HTTP/1.1 response, compiled: the cores of the recorder and of a connection.

A response of the closed loop goes from httptools' parser to the next request's `write` without a
line of Python: the parser calls `ConnectionCore.closed_loop_message_complete` (a C method), which
reads the clock, stores the response's instants and status in the recorder's buffers and sends the
next request. With the recorder's buffers as int64 arrays (no Python integer made per response, none
converted at the fold), the closed loop runs 6,990 user-space instructions per request instead of
12,552 when this was Python (`bench/bench_engine.py --only instructions`).

An open-loop response takes the same way in (`ConnectionCore.open_loop_message_complete`): it is
recorded, and the connection goes to the oldest waiting send or back to its pool's free ones, in C;
only handing it on to a waiting send and sending what has come due call back into the runner. The
send of a planned instant is compiled too (`OpenLoopDispatcher.dispatch`: the next target, a free
connection, the write), and so is the arming of the open loop's `timerfd` (`timerfd_arm`, in place of
ctypes): paced by its timer at 400 rps, the open loop went from 36,200 user-space instructions per
request to 33,400 with the response path compiled, 26,600 with the timer's arming, 22,800 with the
send (callgrind, a 10 s run minus a 4 s run).

Everything else stays in Python, in the subclasses: `worker.recorder.IntervalRecorder` derives from
`RecorderCore`, `worker.engines.http_connection.HttpConnection` from `ConnectionCore`. The fields
declared here are their attributes as before (`recorder.count`, `conn.busy`, ...), read and written
from Python as plain attributes.

The clock is `clock_gettime(CLOCK_MONOTONIC)`, the clock of `time.monotonic_ns()` on Linux, so
instants taken here and in Python compare.
"""

from cpython.exc cimport PyErr_SetFromErrno
from libc.stdint cimport int64_t
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

cdef extern from *:
    """
    #ifdef __linux__
    #include <sys/timerfd.h>
    static int meshload_timerfd_create(void) {
        return timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    }
    static int meshload_timerfd_arm(int fd, int64_t due_ns) {
        struct itimerspec spec = {{0, 0}, {due_ns / 1000000000, due_ns % 1000000000}};
        return timerfd_settime(fd, TFD_TIMER_ABSTIME, &spec, NULL);
    }
    #else
    #include <errno.h>
    static int meshload_timerfd_create(void) { errno = ENOSYS; return -1; }
    static int meshload_timerfd_arm(int fd, int64_t due_ns) { errno = ENOSYS; return -1; }
    #endif
    """
    int meshload_timerfd_create() nogil
    int meshload_timerfd_arm(int fd, int64_t due_ns) nogil


cdef inline int64_t _now_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <int64_t>ts.tv_sec * 1000000000 + ts.tv_nsec


def monotonic_ns() -> int:
    """The clock this module reads (for tests: it must be `time.monotonic_ns`'s)."""
    return _now_ns()


def timerfd_create() -> int:
    """A non-blocking `timerfd` on the monotonic clock, or -1 where there is none (not Linux)."""
    return meshload_timerfd_create()


def timerfd_arm(int fd, int64_t due_ns) -> None:
    """Arm `fd` (from `timerfd_create`) to become readable at the absolute monotonic instant `due_ns`;
    0 disarms it. One C call per send the open loop sleeps for, where ctypes cost about 2,400
    instructions (libffi and its argument conversions)."""
    if meshload_timerfd_arm(fd, due_ns) != 0:
        PyErr_SetFromErrno(OSError)


cdef class RecorderCore:
    """The recorder's buffers: one row per response of its planned, sent and done instants
    (monotonic ns) and its status, `count` rows used; `_full()` (the subclass's) empties them.

    `buffers` are four int64 numpy arrays (planned, sent, done, status): a response is stored as four
    machine integers, which the fold then reads as arrays, with no conversion of Python integers
    on either side."""

    cdef int64_t[::1] _planned, _sent, _done, _statuses
    cdef object _buffers
    cdef Py_ssize_t _rows
    cdef public Py_ssize_t count, capacity
    #: Requests sent (engines add to it directly).
    cdef public int64_t sent

    @property
    def buffers(self):
        """The four arrays recorded into (planned, sent, done, status); rows `[:count]` are used."""
        return self._buffers

    @buffers.setter
    def buffers(self, value):
        planned, sent, done, statuses = value
        # Typed memoryviews: a wrong dtype or a non-contiguous array is refused here, not written past.
        self._planned = planned
        self._sent = sent
        self._done = done
        self._statuses = statuses
        self._rows = min(len(planned), len(sent), len(done), len(statuses))
        self._buffers = (planned, sent, done, statuses)

    def record_response(self, int64_t planned_ns, int64_t sent_ns, int64_t done_ns, int64_t status) -> None:
        """One response (any status): planned instant, actual send, completion (monotonic ns)."""
        self._store(planned_ns, sent_ns, done_ns, status)

    cdef inline int _store(self, int64_t planned_ns, int64_t sent_ns, int64_t done_ns, int64_t status) except -1:
        cdef Py_ssize_t i = self.count
        if i >= self._rows:
            raise IndexError(f"the recorder's buffers have {self._rows} rows; row {i} was asked for")
        self._planned[i] = planned_ns
        self._sent[i] = sent_ns
        self._done[i] = done_ns
        self._statuses[i] = status
        i += 1
        self.count = i
        if i == self.capacity:
            self._full()
        return 0


cdef class ClosedLoopControl:
    """What every connection of one closed-loop runner reads per response: the request to send next
    on the same connection (None: the runner decides, `after_response`) and the run's end."""

    cdef public object payload
    cdef public int64_t end_ns

    def __init__(self, payload: bytes | None, end_ns: int) -> None:
        self.payload = payload
        self.end_ns = end_ns


cdef class OpenLoopControl:
    """What every connection of one open-loop runner reads per response: the next planned instant
    (the runner sends what is due once a response arrives at or after it) and whether waiting sends
    may still go out (false once the runner has abandoned them)."""

    cdef public int64_t next_due_ns
    cdef public bint accepting_sends

    def __init__(self, next_due_ns: int) -> None:
        self.next_due_ns = next_due_ns
        self.accepting_sends = True


cdef class PoolCore:
    """One origin's free connections (`idle`) and the sends waiting for one (`pending`, a deque of
    `(planned_ns, payload, ready_ns)`, oldest first), as an open-loop response reads them."""

    cdef public list idle
    cdef public object pending


cdef class ConnectionCore:
    """A connection's state per request: the request in flight (`planned_ns`, `sent_ns`, `busy`),
    whether it may carry another (`retired`), its parser, its transport's `write`, its recorder."""

    cdef public int64_t planned_ns, sent_ns
    cdef public bint busy, retired
    cdef public object _parser, _write, runner
    #: The parser that frames responses to HEAD (`HeadAwareParser`), where such requests may go.
    cdef public object _heads
    cdef public RecorderCore _recorder
    #: Set on closed-loop connections only.
    cdef public ClosedLoopControl closed_loop
    #: Set on open-loop connections only: the runner's control and this connection's pool.
    cdef public OpenLoopControl open_loop
    cdef public PoolCore pool

    def send(self, payload: bytes, int64_t planned_ns, int64_t sent_ns) -> None:
        """Send a request planned at `planned_ns` (its send taken as `sent_ns`) on this idle connection."""
        self._send(payload, planned_ns, sent_ns)

    cdef inline int _send(self, object payload, int64_t planned_ns, int64_t sent_ns) except -1:
        self.planned_ns = planned_ns
        self.sent_ns = sent_ns
        self.busy = True
        heads = self._heads
        if heads is not None:
            heads.head = payload.startswith(b"HEAD ")
        self._write(payload)
        return 0

    def closed_loop_message_complete(self) -> None:
        """httptools: a full response has arrived on a closed-loop connection. Records it, then
        sends the client's next request on this connection, or leaves that to the runner."""
        cdef int64_t done = _now_ns()
        cdef int64_t status
        cdef RecorderCore recorder = self._recorder
        cdef ClosedLoopControl control = self.closed_loop
        if recorder is None or control is None:
            # Typed fields are not checked for None on access: a connection not set up for the
            # closed loop is an error here, not a crash.
            raise TypeError("closed_loop_message_complete needs a recorder and a closed-loop control")
        if not self.busy:
            return
        parser = self._parser
        status = parser.get_status_code()
        if status < 200:
            return  # an interim response (100, 103, ...): the final one follows
        recorder._store(self.planned_ns, self.sent_ns, done, status)
        payload = control.payload
        if payload is not None and done < control.end_ns and parser.should_keep_alive():
            self._send(payload, done, _now_ns())
            recorder.sent += 1
        else:
            self.busy = False
            self.runner.after_response(self, done, parser.should_keep_alive())

    def open_loop_message_complete(self) -> None:
        """httptools: a full response has arrived on an open-loop connection. Records it, frees the
        connection for the oldest waiting send (or parks it), then sends what has come due."""
        cdef int64_t done = _now_ns()
        cdef int64_t status
        cdef RecorderCore recorder = self._recorder
        cdef OpenLoopControl control = self.open_loop
        cdef PoolCore pool = self.pool
        if recorder is None or control is None or pool is None:
            raise TypeError("open_loop_message_complete needs a recorder, an open-loop control and a pool")
        if not self.busy:
            return  # an answer nobody asked for (already timed out): ignore
        parser = self._parser
        status = parser.get_status_code()
        if status < 200:
            return  # an interim response (100, 103, ...): the final one follows
        recorder._store(self.planned_ns, self.sent_ns, done, status)
        self.busy = False
        if parser.should_keep_alive():
            if pool.pending and control.accepting_sends:
                self.runner.release(pool, self)
            else:
                pool.idle.append(self)
        else:
            self.runner.await_server_close(self)  # `on_lost` replaces it if sends are waiting
        if done >= control.next_due_ns:
            self.runner.send_due(done)


cdef class OpenLoopDispatcher:
    """The open loop's send of one planned instant: the share's next target in turn, on a free
    connection of its origin, or else (`runner.wait_for_connection`) queued for one. `dispatched`
    counts the instants dispatched."""

    cdef list _sequence
    cdef Py_ssize_t _sequence_i
    cdef list _pools
    cdef RecorderCore _recorder
    cdef object _runner
    cdef public int64_t dispatched

    def __init__(self, runner: object, sequence: list, pools: list, RecorderCore recorder not None) -> None:
        if not sequence:
            raise ValueError("an open loop needs at least one target")
        self._runner = runner
        self._sequence = sequence  # (origin index, request bytes), in the share's order
        self._pools = pools  # PoolCore per origin index
        self._recorder = recorder
        self._sequence_i = 0
        self.dispatched = 0

    def dispatch(self, int64_t planned_ns) -> None:
        cdef tuple target = self._sequence[self._sequence_i]
        cdef PoolCore pool
        cdef ConnectionCore conn
        self.dispatched += 1
        self._sequence_i += 1
        if self._sequence_i == len(self._sequence):
            self._sequence_i = 0
        cdef list idle
        payload = target[1]
        pool = self._pools[target[0]]
        idle = pool.idle
        while idle:
            conn = idle.pop()
            if not conn.retired:
                conn._send(payload, planned_ns, _now_ns())
                self._recorder.sent += 1
                return
        self._runner.wait_for_connection(pool, planned_ns, payload)
