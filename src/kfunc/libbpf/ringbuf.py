"""Reading a ``BPF_MAP_TYPE_RINGBUF`` map: events as Python bytes or decoded objects.

Two readers of the same ring. The default (``reader="mmap"``) reads the
ring's memory from Python, as libbpf's ``ringbuf.c`` does in C: the map fd
mmapped as one read-write page holding the consumer position, then (read
only) the producer position page and the data pages, mapped twice in a row
so that a record that wraps around the end reads as one slice. Each record
starts with an 8-byte header whose first 32 bits are its length with two
flags (BUSY: not committed yet; DISCARD: skip it); records are 8-byte
aligned. Waiting is an epoll on the map fd, which the kernel wakes when data
arrives. This costs one slice per event, no ctypes call: several times
libbpf's ``ring_buffer__consume`` driving a ctypes callback per event (see
``bench/ringbuf.py``), which stays available as ``reader="libbpf"``.

On x86-64 (the only architecture kfunc targets) plain loads and stores of
aligned 64-bit words are the acquire loads and release stores libbpf uses.
"""

from __future__ import annotations

import ctypes
import errno as errnos
import mmap
import select
import struct
import time
from collections import deque
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any

from kfunc.errors import LibbpfError
from kfunc.libbpf import _ctypes as lib
from kfunc.libbpf.object import Map, libbpf_error, libbpf_messages

__all__ = ["EventType", "RingBuffer", "event_decoder"]

# include/uapi/linux/bpf.h
BPF_RINGBUF_BUSY_BIT = 1 << 31
BPF_RINGBUF_DISCARD_BIT = 1 << 30
BPF_RINGBUF_HDR_SZ = 8
_FLAGS = BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT
_LEN_MASK = ~_FLAGS & 0xFFFFFFFF
_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")

#: What events are decoded into: a ctypes type (``from_buffer_copy``), a
#: ``struct`` format or :class:`struct.Struct` (a tuple), or any callable
#: taking the event's bytes. None keeps the bytes.
EventType = (
    type[ctypes.Structure] | type[ctypes.Union] | str | struct.Struct | Callable[[bytes], Any]
)


def event_decoder(event_type: EventType | None) -> Callable[[bytes], Any] | None:
    """The function that turns an event's bytes into ``event_type`` (None: keep bytes)."""
    if event_type is None:
        return None
    if isinstance(event_type, str):
        event_type = struct.Struct(event_type)
    if isinstance(event_type, struct.Struct):
        return event_type.unpack_from
    if isinstance(event_type, type) and issubclass(
        event_type, ctypes.Structure | ctypes.Union | ctypes.Array | ctypes._SimpleCData
    ):
        return event_type.from_buffer_copy
    if callable(event_type):
        return event_type
    raise TypeError(f"event_type: {event_type!r} is not a ctypes type, struct format or callable")


class RingBuffer:
    """Events of a ring buffer map; a context manager.

    With ``callback``, each event is passed to it as it is consumed (an
    exception from it stops consuming and propagates; the events after it
    stay in the ring). Without, events queue up: :meth:`events` yields them,
    :meth:`read` returns what is there as a list. ``event_type`` decodes each
    event first (see :data:`EventType`). Closing the map's object closes the
    ring buffer too.
    """

    def __init__(
        self,
        map_: Map,
        callback: Callable[[Any], object] | None = None,
        *,
        event_type: EventType | None = None,
        reader: str = "mmap",
    ) -> None:
        if map_.type != lib.BPF_MAP_TYPE_RINGBUF:
            raise LibbpfError(
                f"map '{map_.name}': not a ring buffer (type {map_.type_name})",
                errno=errnos.EINVAL,
                fix="declare it with __uint(type, BPF_MAP_TYPE_RINGBUF)",
            )
        if reader not in ("mmap", "libbpf"):
            raise LibbpfError(
                f"map '{map_.name}': unknown ring buffer reader {reader!r}",
                errno=errnos.EINVAL,
                fix='use reader="mmap" (the default) or reader="libbpf"',
            )
        fd = map_._fd_checked()
        self.map = map_
        self.reader = reader
        self._callback = callback
        self._decode = event_decoder(event_type)
        self._queue: deque[Any] = deque()
        self._error: BaseException | None = None
        self._ptr: int | None = None
        self._closed = False
        if reader == "libbpf":
            self._open_libbpf(fd)
        else:
            self._open_mmap(fd)
        map_._obj._cleanups.append(self.close)

    # -- the mmap reader ------------------------------------------------------

    def _open_mmap(self, fd: int) -> None:
        page = mmap.PAGESIZE
        size = self.map.max_entries
        try:
            self._consumer = mmap.mmap(fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            try:
                self._producer = mmap.mmap(
                    fd, page + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ, offset=page
                )
            except BaseException:
                self._consumer.close()
                raise
        except OSError as exc:
            raise LibbpfError(
                f"map '{self.map.name}': cannot mmap the ring buffer: {exc.strerror}",
                errno=exc.errno or errnos.EINVAL,
            ) from None
        self._data_offset = page  # the data pages follow the producer page
        self._mask = size - 1
        self._epoll = select.epoll()
        self._epoll.register(fd, select.EPOLLIN)

    def _read_mmap(self, limit: int | None = None) -> int:
        """Consume up to ``limit`` events from the ring's memory; returns how many."""
        if self._callback is not None or limit is not None:
            return self._read_mmap_each(limit)
        events = self._drain()
        self._queue.extend(events)
        return len(events)

    def _drain(self) -> list[Any]:
        """Every event committed now, decoded: the batch path."""
        consumer, data = self._consumer, self._producer
        mask, base, hdr_sz = self._mask, self._data_offset, BPF_RINGBUF_HDR_SZ
        u32 = _U32.unpack_from
        raw: list[bytes] = []
        append = raw.append
        (cons,) = _U64.unpack_from(consumer, 0)
        while True:
            (prod,) = _U64.unpack_from(data, 0)
            if cons >= prod:
                break
            while cons < prod:
                off = base + (cons & mask)
                (hdr,) = u32(data, off)
                if hdr & _FLAGS:
                    if hdr & BPF_RINGBUF_BUSY_BIT:  # not committed yet: later
                        prod = 0
                        break
                    cons += ((hdr & _LEN_MASK) + hdr_sz + 7) & ~7  # discarded
                    continue
                cons += (hdr + hdr_sz + 7) & ~7
                append(data[off + hdr_sz : off + hdr_sz + hdr])
            if not prod:
                break
        _U64.pack_into(consumer, 0, cons)
        # map() runs the decoder from C: the per-event cost stays one call
        return raw if self._decode is None else list(map(self._decode, raw))

    def _read_mmap_each(self, limit: int | None) -> int:
        """The same one event at a time: for a callback, or a limit."""
        consumer, data = self._consumer, self._producer
        mask, base, hdr_sz = self._mask, self._data_offset, BPF_RINGBUF_HDR_SZ
        decode, callback = self._decode, self._callback or self._queue.append
        (cons,) = _U64.unpack_from(consumer, 0)
        count = 0
        try:
            while True:
                (prod,) = _U64.unpack_from(data, 0)
                if cons >= prod:
                    break
                while cons < prod:
                    if limit is not None and count >= limit:
                        return count
                    off = base + (cons & mask)
                    (hdr,) = _U32.unpack_from(data, off)
                    if hdr & BPF_RINGBUF_BUSY_BIT:
                        return count
                    length = hdr & _LEN_MASK
                    cons += (length + hdr_sz + 7) & ~7
                    if hdr & BPF_RINGBUF_DISCARD_BIT:
                        continue
                    event: Any = data[off + hdr_sz : off + hdr_sz + length]
                    count += 1
                    # as libbpf: an event whose callback raises is consumed, the rest stay
                    callback(event if decode is None else decode(event))
        finally:
            _U64.pack_into(consumer, 0, cons)
        return count

    # -- the libbpf reader ----------------------------------------------------

    def _open_libbpf(self, fd: int) -> None:
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
                    subject=f"map '{self.map.name}'",
                )
        self._ptr = ptr

    def _on_sample(self, _ctx: int | None, data: int, size: int) -> int:
        try:
            event: Any = ctypes.string_at(data, size)
            if self._decode is not None:
                event = self._decode(event)
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

    # -- the API --------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise LibbpfError(f"map '{self.map.name}': ring buffer closed", errno=errnos.EBADF)

    def poll(self, timeout: float | None = None) -> int:
        """Wait up to ``timeout`` seconds (None: forever) for events and consume them.

        Returns the number of events consumed.
        """
        self._check_open()
        if self._ptr is not None:
            timeout_ms = -1 if timeout is None else max(0, round(timeout * 1000))
            return self._check(lib.ring_buffer__poll(self._ptr, timeout_ms), "poll")
        count = self._read_mmap()
        if count:
            return count
        try:
            self._epoll.poll(-1 if timeout is None else max(0.0, timeout))
        except InterruptedError:
            return 0
        return self._read_mmap()

    def consume(self) -> int:
        """Consume every event available now, without waiting; returns how many."""
        self._check_open()
        if self._ptr is not None:
            return self._check(lib.ring_buffer__consume(self._ptr), "consume")
        return self._read_mmap()

    def read(self, limit: int | None = None) -> list[Any]:
        """The events available now (at most ``limit``), as a list: the batch path.

        Events queued by an earlier :meth:`poll` come first. Only for a ring
        buffer made without a callback.
        """
        self._check_queue_mode("read()")
        self._check_open()
        if self._ptr is None and limit is None and not self._queue:
            return self._drain()
        if self._ptr is not None:
            self.consume()
        elif limit is None or len(self._queue) < limit:
            self._read_mmap(None if limit is None else limit - len(self._queue))
        if limit is None or limit >= len(self._queue):
            out = list(self._queue)
            self._queue.clear()
            return out
        return [self._queue.popleft() for _ in range(limit)]

    def _check_queue_mode(self, what: str) -> None:
        if self._callback is not None:
            raise LibbpfError(
                f"map '{self.map.name}': ring buffer delivers to its callback, not {what}",
                errno=errnos.EINVAL,
            )

    def events(self, timeout: float | None = None) -> Iterator[Any]:
        """Yield queued events, polling for more until ``timeout`` seconds pass without one.

        ``timeout=None`` waits forever; ``timeout=0`` drains what is there now.
        Only for a ring buffer made without a callback.
        """
        self._check_queue_mode("events()")
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
        if self._closed:
            return
        self._closed = True
        self.map._obj._cleanups.remove(self.close)
        if self._ptr is not None:
            ptr, self._ptr = self._ptr, None
            lib.ring_buffer__free(ptr)
        else:
            self._epoll.close()
            self._producer.close()
            self._consumer.close()

    def __enter__(self) -> RingBuffer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
