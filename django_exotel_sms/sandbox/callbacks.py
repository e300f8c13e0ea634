"""Delayed state changes and StatusCallback POSTs.

One scheduler thread owns a heap of due jobs; a fixed pool of workers posts callbacks from a
bounded queue, so thousands of messages never mean thousands of threads. Only the scheduler
puts into the queue (workers push retries and follow-ups back onto the heap), so a full
queue slows the scheduler down instead of deadlocking the workers.
"""

from __future__ import annotations

import base64
import heapq
import http.client
import itertools
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from urllib.parse import unquote, urlencode, urlsplit

from .store import CallbackAttempt

__all__ = ["Delivery", "Dispatcher"]


@dataclass(frozen=True)
class Delivery:
    sid: str
    url: str
    form: tuple[tuple[str, str], ...]
    kind: str  # "terminal", "duplicate" or "stale"
    attempt: int = 1
    followups: tuple[Delivery, ...] = ()  # posted after this one succeeds or gives up


@dataclass(frozen=True)
class _Transition:
    sid: str


_Job = Delivery | _Transition


@dataclass(frozen=True)
class PostSettings:
    retries: int
    retry_delay: float
    timeout: float


class Dispatcher:
    def __init__(
        self,
        on_transition: Callable[[str], list[Delivery]],
        record: Callable[[CallbackAttempt], None],
        settings: Callable[[], PostSettings],
        *,
        workers: int = 8,
        queue_size: int = 10_000,
    ) -> None:
        self._on_transition = on_transition
        self._record = record
        self._settings = settings
        lock = threading.Lock()
        self._cond = threading.Condition(lock)  # wakes the scheduler: new or earlier job
        self._idle = threading.Condition(lock)  # wakes wait(): nothing pending
        self._heap: list[tuple[float, int, _Job]] = []
        self._seq = itertools.count()
        self._pending = 0  # jobs scheduled and not yet finished, in-flight ones included
        self._queue: queue.Queue[Delivery | None] = queue.Queue(maxsize=queue_size)
        self._workers = workers
        self._threads: list[threading.Thread] = []
        self._stopped = threading.Event()
        self._local = threading.local()

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        self._stopped.clear()
        self._threads = [threading.Thread(target=self._schedule_loop, daemon=True)]
        self._threads += [
            threading.Thread(target=self._work_loop, daemon=True) for _ in range(self._workers)
        ]
        for index, thread in enumerate(self._threads):
            thread.name = f"exotel-sandbox-{'scheduler' if index == 0 else f'callback-{index}'}"
            thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stopped.set()
        self.clear()
        with self._cond:
            self._cond.notify_all()
        for _ in range(self._workers):
            try:
                self._queue.put_nowait(None)
            except queue.Full:
                break  # workers also poll _stopped
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []

    # -- scheduling ---------------------------------------------------------------------
    def schedule_transition(self, sid: str, due: float) -> None:
        self._push(due, _Transition(sid))

    def schedule(self, delivery: Delivery, due: float) -> None:
        self._push(due, delivery)

    def _push(self, due: float, job: _Job) -> None:
        with self._cond:
            self._pending += 1
            heapq.heappush(self._heap, (due, next(self._seq), job))
            self._cond.notify()

    def _done(self) -> None:
        with self._cond:
            self._pending -= 1
            if self._pending <= 0:
                self._pending = 0
                self._idle.notify_all()

    def clear(self) -> None:
        """Forget every job not yet started (reset / stop); in-flight posts finish."""
        with self._cond:
            dropped = len(self._heap)
            self._heap.clear()
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    dropped += 1
            self._pending = max(0, self._pending - dropped)
            if self._pending == 0:
                self._idle.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        """True once every scheduled transition and callback is done (posted or given up)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._idle:
            while self._pending > 0:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._idle.wait(remaining)
            return True

    @property
    def pending(self) -> int:
        with self._cond:
            return self._pending

    # -- threads ------------------------------------------------------------------------
    def _schedule_loop(self) -> None:
        while not self._stopped.is_set():
            with self._cond:
                if not self._heap:
                    self._cond.wait(0.5)
                    continue
                delay = self._heap[0][0] - time.time()
                if delay > 0:
                    self._cond.wait(min(delay, 0.5))
                    continue
                _, _, job = heapq.heappop(self._heap)
            if isinstance(job, _Transition):
                try:
                    for delivery in self._on_transition(job.sid):
                        self.schedule(delivery, time.time())
                finally:
                    self._done()
                continue
            while not self._stopped.is_set():
                try:
                    self._queue.put(job, timeout=0.5)  # bounded: waits for a free worker
                    break
                except queue.Full:
                    continue
            else:
                self._done()

    def _work_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                job = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            if job is None:
                return
            try:
                self._post(job)
            finally:
                self._done()

    def _poster(self) -> _Poster:
        poster: _Poster | None = getattr(self._local, "poster", None)
        if poster is None:
            poster = self._local.poster = _Poster()
        return poster

    def _post(self, job: Delivery) -> None:
        settings = self._settings()
        status_code: int | None = None
        error: str | None = None
        try:
            status_code = self._poster().post(job.url, job.form, settings.timeout)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        self._record(
            CallbackAttempt(
                time=time.time(),
                sid=job.sid,
                url=job.url,
                form=list(job.form),
                kind=job.kind,
                attempt=job.attempt,
                status_code=status_code,
                error=error,
            )
        )
        # Exotel retries "a couple of times" on failure; a 4xx is an answer, not a failure.
        if (status_code is None or status_code >= 500) and job.attempt <= settings.retries:
            retry = replace(job, attempt=job.attempt + 1)
            self.schedule(retry, time.time() + settings.retry_delay)
            return
        for followup in job.followups:
            self.schedule(followup, time.time())


_Origin = tuple[str, str, int]


class _Poster:
    """One worker's keep-alive connections, by origin. ``http.client`` rather than
    ``requests``: a callback then costs a fraction of the CPU, which matters when
    thousands of them share the GIL with the API side."""

    def __init__(self) -> None:
        self._connections: dict[_Origin, http.client.HTTPConnection] = {}

    def post(self, url: str, form: Sequence[tuple[str, str]], timeout: float) -> int:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"StatusCallback is not an http(s) URL: {url!r}")
        https = parts.scheme == "https"
        origin = (parts.scheme, parts.hostname, parts.port or (443 if https else 80))
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": "ExotelSandbox/1.0",
        }
        if parts.username is not None:  # http://user:pass@host/... as Exotel would honour it
            userinfo = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            headers["Authorization"] = "Basic " + base64.b64encode(userinfo.encode()).decode()
        body = urlencode(list(form)).encode()
        for _ in range(2):
            connection = self._connections.pop(origin, None)
            reused = connection is not None
            if connection is None:
                factory = http.client.HTTPSConnection if https else http.client.HTTPConnection
                connection = factory(origin[1], origin[2], timeout=timeout)
            try:
                connection.request("POST", path, body=body, headers=headers)
                response = connection.getresponse()
                response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                connection.close()
                if reused:
                    continue  # the receiver closed an idle keep-alive connection: reconnect
                raise
            except BaseException:
                connection.close()
                raise
            if response.will_close:
                connection.close()
            else:
                self._connections[origin] = connection
            return response.status
        raise http.client.RemoteDisconnected("connection closed twice")  # pragma: no cover
