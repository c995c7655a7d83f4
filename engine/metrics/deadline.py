"""An HTTP session whose every answer is bounded in time and size, not only per read.

requests' ``timeout`` applies to each socket read: a server that dribbles one byte a
second holds a caller for as long as it likes. ``DeadlineSession`` reads ``timeout`` as
a deadline for the whole answer (connect, headers, body): before each socket read the
socket's timeout shrinks to the time left, and once the deadline has passed the read
fails, the connection is closed, and the request raises ``requests.Timeout``. The bytes
received (and the body once decompressed) are capped too: past ``max_answer`` the request
raises ``AnswerTooLargeError``.
"""

from __future__ import annotations

import http.client
import io
import socket
import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import BaseAdapter, HTTPAdapter
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import ProtocolError, ReadTimeoutError
from urllib3.poolmanager import PoolManager, ProxyManager

from engine.errors import InputError

MAX_ANSWER = 256 * 1024 * 1024  # generous for a range query; a hostile server's gigabytes are not
_CHUNK = 64 * 1024


class AnswerTooLargeError(InputError):
    """A server's answer exceeds the session's size limit (``.limit`` bytes)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"answer larger than the {size_text(limit)} limit")
        self.limit = limit


def size_text(size: int) -> str:
    """A byte count as people write it: 256 MiB, 4 KiB, 100 bytes."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size} bytes"


@dataclass
class _Limits:
    """One request's deadline (monotonic seconds) and byte budget, redirects included."""

    deadline: float
    limit: int
    received: int = 0


# Set for the duration of one DeadlineSession.request, in the thread that sends it: the
# connection pools are shared, so a response learns its limits here, not from its pool.
_LIMITS: ContextVar[_Limits | None] = ContextVar("autosre_http_limits", default=None)


class _BoundedReader(io.RawIOBase):
    """A socket's reads, each given only the time left and counted against the budget."""

    def __init__(self, sock: socket.socket, limits: _Limits) -> None:
        super().__init__()
        self._sock = sock
        self._raw = sock.makefile("rb", buffering=0)
        self._limits = limits

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        left = self._limits.deadline - time.monotonic()
        if left <= 0:
            # TimeoutError is socket.timeout: urllib3 reports it as a read timeout.
            raise TimeoutError("deadline passed")
        self._sock.settimeout(left)
        count = self._raw.readinto(buffer)
        if count:
            self._limits.received += count
            if self._limits.received > self._limits.limit:
                raise AnswerTooLargeError(self._limits.limit)
        return count

    def close(self) -> None:
        self._raw.close()
        super().close()


class _BoundedSocket:
    """Hands http.client a bounded reader in place of the socket's own file."""

    def __init__(self, sock: socket.socket, limits: _Limits) -> None:
        self._sock = sock
        self._limits = limits

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(_BoundedReader(self._sock, self._limits))


class _BoundedResponse(http.client.HTTPResponse):
    """http.client's response, reading through a bounded reader while limits are set."""

    def __init__(self, sock: socket.socket, *args: Any, **kwargs: Any) -> None:
        limits = _LIMITS.get()
        reader: Any = sock if limits is None else _BoundedSocket(sock, limits)
        super().__init__(reader, *args, **kwargs)


class _HTTPConnection(HTTPConnection):
    response_class = _BoundedResponse


class _HTTPSConnection(HTTPSConnection):
    response_class = _BoundedResponse


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOLS: dict[str, type[HTTPConnectionPool]] = {"http": _HTTPPool, "https": _HTTPSPool}


class _BoundedAdapter(HTTPAdapter):
    """requests' adapter, its pools (direct or through an HTTP proxy) using bounded reads.

    No retries: a failed answer is reported, not tried again within the deadline."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> PoolManager:
        manager: PoolManager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if isinstance(manager, ProxyManager):  # a SOCKS manager keeps its own pools
            manager.pool_classes_by_scheme = _POOLS
        return manager


class DeadlineSession(requests.Session):
    """A requests session reading each request's ``timeout`` as a deadline for the whole
    answer, and refusing answers larger than ``max_answer`` bytes."""

    def __init__(self, *, max_answer: int = MAX_ANSWER) -> None:
        super().__init__()
        self.max_answer = max_answer
        self._adapter = _BoundedAdapter()
        self.mount("http://", self._adapter)
        self.mount("https://", self._adapter)

    def get_adapter(self, url: str) -> BaseAdapter:
        """Always the bounded adapter: PrometheusConnect mounts a plain one for its URL."""
        return self._adapter

    def request(
        self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        """Send a request; the answer, body read in full, within ``timeout`` seconds.

        Raise requests.Timeout past the deadline, AnswerTooLargeError past the size limit.
        """
        timeout = kwargs.pop("timeout", None)
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
            raise TypeError(f"DeadlineSession needs timeout=<seconds> (> 0), got {timeout!r}")
        limits = _Limits(deadline=time.monotonic() + timeout, limit=self.max_answer)
        token = _LIMITS.set(limits)
        try:
            # The body is read here, against the deadline; the socket reads shrink
            # their own timeouts, so requests' timeout only bounds the connect.
            kwargs.update(stream=True, timeout=timeout)
            response = super().request(method, url, *args, **kwargs)
            try:
                response._content = _read_body(response, self.max_answer)
            except BaseException:
                response.close()  # closes the socket: nothing reads on in the background
                raise
            return response
        finally:
            _LIMITS.reset(token)


def _read_body(response: requests.Response, limit: int) -> bytes:
    """The whole body, decompressed, or an error: the deadline or the limit passed."""
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise AnswerTooLargeError(limit)
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.raw.stream(_CHUNK, decode_content=True):
            size += len(chunk)
            if size > limit:  # a small compressed answer can decode to gigabytes
                raise AnswerTooLargeError(limit)
            chunks.append(chunk)
    except ReadTimeoutError as exc:
        raise requests.ReadTimeout(exc, response=response) from None
    except ProtocolError as exc:
        raise requests.ConnectionError(exc, response=response) from None
    return b"".join(chunks)
