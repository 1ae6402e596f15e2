"""Reading a ``BPF_MAP_TYPE_RINGBUF`` map through libbpf's ring_buffer API."""

from __future__ import annotations

import ctypes
import errno as errnos
import time
from collections import deque
from collections.abc import Callable, Iterator
from types import TracebackType

from kfunc.errors import LibbpfError
from kfunc.libbpf import _ctypes as lib
from kfunc.libbpf.object import Map, libbpf_error, libbpf_messages

__all__ = ["RingBuffer"]


class RingBuffer:
    """Events of a ring buffer map as Python bytes; a context manager.

    With ``callback``, each event is passed to it as it is consumed (an
    exception from it stops the poll and propagates). Without, events queue
    up and :meth:`events` yields them. Closing the map's object closes it too.
    """

    def __init__(self, map_: Map, callback: Callable[[bytes], object] | None = None) -> None:
        if map_.type != lib.BPF_MAP_TYPE_RINGBUF:
            raise LibbpfError(
                f"map '{map_.name}': not a ring buffer (type {map_.type_name})",
                errno=errnos.EINVAL,
                fix="declare it with __uint(type, BPF_MAP_TYPE_RINGBUF)",
            )
        fd = map_._fd_checked()
        self.map = map_
        self._callback = callback
        self._queue: deque[bytes] = deque()
        self._error: BaseException | None = None
        # libbpf keeps the pointer: the CFUNCTYPE object must live as long as the ring buffer
        self._sample_fn = lib.ring_buffer_sample_fn(self._on_sample)
        with libbpf_messages() as records:
            ptr = lib.ring_buffer__new(fd, self._sample_fn, None, None)
            if not ptr:
                err = ctypes.get_errno()
                raise libbpf_error(
                    records,
                    f"failed to create ring buffer: {lib.strerror(err)}",
                    err,
                    subject=f"map '{map_.name}'",
                )
        self._ptr: int | None = ptr
        map_._obj._cleanups.append(self.close)

    def _on_sample(self, _ctx: int | None, data: int, size: int) -> int:
        try:
            event = ctypes.string_at(data, size)
            if self._callback is None:
                self._queue.append(event)
            else:
                self._callback(event)
        except BaseException as exc:  # re-raised by poll()/consume() after libbpf returns
            self._error = exc
            return -1
        return 0

    def _check(self, ret: int, what: str) -> int:
        error, self._error = self._error, None
        if error is not None:
            raise error
        if ret == -errnos.EINTR:
            return 0
        if ret < 0:
            raise LibbpfError(
                f"map '{self.map.name}': ring buffer {what} failed: {lib.strerror(-ret)}",
                errno=-ret,
            )
        return ret

    def _ptr_checked(self) -> int:
        if self._ptr is None:
            raise LibbpfError(f"map '{self.map.name}': ring buffer closed", errno=errnos.EBADF)
        return self._ptr

    def poll(self, timeout: float | None = None) -> int:
        """Wait up to ``timeout`` seconds (None: forever) for events and consume them.

        Returns the number of events consumed.
        """
        timeout_ms = -1 if timeout is None else max(0, round(timeout * 1000))
        return self._check(lib.ring_buffer__poll(self._ptr_checked(), timeout_ms), "poll")

    def consume(self) -> int:
        """Consume every event available now, without waiting; returns how many."""
        return self._check(lib.ring_buffer__consume(self._ptr_checked()), "consume")

    def events(self, timeout: float | None = None) -> Iterator[bytes]:
        """Yield queued events, polling for more until ``timeout`` seconds pass without one.

        ``timeout=None`` waits forever; ``timeout=0`` drains what is there now.
        Only for a ring buffer made without a callback.
        """
        if self._callback is not None:
            raise LibbpfError(
                f"map '{self.map.name}': ring buffer delivers to its callback, not events()",
                errno=errnos.EINVAL,
            )
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            while self._queue:
                yield self._queue.popleft()
                if timeout is not None:
                    deadline = time.monotonic() + timeout
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                if not self.consume():
                    return
                continue
            self.poll(remaining)

    def close(self) -> None:
        """Free the ring buffer (idempotent)."""
        if self._ptr is None:
            return
        ptr, self._ptr = self._ptr, None
        self.map._obj._cleanups.remove(self.close)
        lib.ring_buffer__free(ptr)

    def __enter__(self) -> RingBuffer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
