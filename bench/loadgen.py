"""A small asyncio HTTP/1.1 load generator for form POSTs to 127.0.0.1.

Light on CPU (raw streams, no HTTP library), so on a 2-core machine the client takes as
little as possible from the server it measures. Keep-alive is used when the server offers
it; gunicorn's sync workers close after each response, and then every request connects.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench import common

REQUEST_TIMEOUT = 30.0


@dataclass
class LoadResult:
    sent: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)

    def summary(self) -> dict[str, Any]:
        lat = self.latencies_ms
        return {
            "requests": self.sent,
            "seconds": round(self.seconds, 3),
            "per_s": round(self.sent / self.seconds, 1) if self.seconds else 0.0,
            "p50_ms": round(common.percentile(lat, 50), 2),
            "p90_ms": round(common.percentile(lat, 90), 2),
            "p99_ms": round(common.percentile(lat, 99), 2),
            "max_ms": round(max(lat), 2) if lat else None,
            "statuses": dict(self.statuses),
            "errors": dict(self.errors),
        }


class _Slot:
    """One connection, opened on first use and again after the server closes it."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def post(self, raw: bytes) -> int:
        for attempt in (1, 2):
            reused = self.writer is not None
            try:
                if self.writer is None:
                    self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
                assert self.reader is not None
                self.writer.write(raw)
                await self.writer.drain()
                head = await self.reader.readuntil(b"\r\n\r\n")
            except (ConnectionError, asyncio.IncompleteReadError):
                self.close()
                if reused and attempt == 1:
                    continue  # the server closed an idle keep-alive connection: reconnect
                raise
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length") or 0)
            if length:
                await self.reader.readexactly(length)
            if headers.get("connection", "").lower() == "close":
                self.close()
            return status
        raise ConnectionError("unreachable")  # pragma: no cover


def build_request(host: str, port: int, path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n"
        "User-Agent: bench-loadgen\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


async def _one(slot: _Slot, raw: bytes, result: LoadResult, started: float) -> None:
    try:
        status = await asyncio.wait_for(slot.post(raw), REQUEST_TIMEOUT)
        result.statuses[status] += 1
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
        slot.close()
        result.errors[type(exc).__name__] += 1
    result.latencies_ms.append((time.perf_counter() - started) * 1000)
    result.sent += 1


async def _closed_loop(host: str, port: int, raws: Sequence[bytes], concurrency: int) -> LoadResult:
    result = LoadResult()
    items = iter(raws)

    async def worker() -> None:
        slot = _Slot(host, port)
        for raw in items:
            await _one(slot, raw, result, time.perf_counter())
        slot.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - started
    return result


async def _open_loop(
    host: str, port: int, raws: Sequence[bytes], rate: float, max_connections: int
) -> LoadResult:
    """Request i is due at i / rate; its latency counts from then (waiting for a free
    connection included), so a server that falls behind shows it."""
    result = LoadResult()
    pool: asyncio.Queue[_Slot] = asyncio.Queue()
    for _ in range(max_connections):
        pool.put_nowait(_Slot(host, port))

    async def fire(raw: bytes, due: float) -> None:
        slot = await pool.get()
        try:
            await _one(slot, raw, result, due)
        finally:
            pool.put_nowait(slot)

    started = time.perf_counter()
    tasks = []
    for i, raw in enumerate(raws):
        due = started + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(fire(raw, due)))
    await asyncio.gather(*tasks)
    result.seconds = time.perf_counter() - started
    while not pool.empty():
        pool.get_nowait().close()
    return result


def closed_loop(url: str, requests: Iterable[tuple[str, bytes]], concurrency: int) -> LoadResult:
    host, port = _host_port(url)
    raws = [build_request(host, port, path, body) for path, body in requests]
    return asyncio.run(_closed_loop(host, port, raws, concurrency))


def open_loop(
    url: str, requests: Iterable[tuple[str, bytes]], rate: float, max_connections: int
) -> LoadResult:
    host, port = _host_port(url)
    raws = [build_request(host, port, path, body) for path, body in requests]
    return asyncio.run(_open_loop(host, port, raws, rate, max_connections))


def _host_port(url: str) -> tuple[str, int]:
    hostport = url.split("://", 1)[1].split("/", 1)[0]
    host, _, port = hostport.partition(":")
    if host != common.HOST:
        raise ValueError(f"the load generator only targets {common.HOST}, not {host!r}")
    return host, int(port)
