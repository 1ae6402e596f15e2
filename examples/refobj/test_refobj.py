"""refobj's kfuncs tested from Python in real kernels (kfunc's pytest plugin).

kfunc test examples/refobj --kernels 6.1,6.12
"""

import ctypes
import struct
import time

import pytest

from kfunc.errors import LibbpfError
from kfunc.vm.remote import RingBuffer


class Event(ctypes.Structure):
    """struct event of refobj.bpf.c."""

    _fields_ = [("seq", ctypes.c_uint32), ("pad", ctypes.c_uint32), ("value", ctypes.c_uint64)]


def test_acquire_read_release(module, bpf):
    # The module is in, its kfuncs are in its BTF under the ids kbuild gave them.
    assert {"refobj_new", "refobj_value", "refobj_release"} <= set(module.kfuncs)
    assert "refobj: kfuncs registered" in module.kernel_log
    obj = bpf.load()
    assert obj.programs["new_value_release"].test_run().retval == 42


def test_values_through_maps_and_a_ring_buffer(bpf):
    obj = bpf.load()
    numbers = obj.maps["numbers"]
    numbers.update(struct.pack("I", 0), struct.pack("Q", 1000))
    ring = RingBuffer(obj.maps["events"], event_type=Event)
    assert obj.programs["emit_values"].test_run(ctx_in=struct.pack("I", 5)).retval == 5
    events = list(ring.events(timeout=0.5))
    assert [(e.seq, e.value) for e in events] == [(i, 1000 + i) for i in range(5)]
    assert numbers.lookup(struct.pack("I", 1)) == struct.pack("Q", sum(range(1000, 1005)))
    assert sorted(struct.unpack("I", k)[0] for k in numbers) == [0, 1]
    # Errors come back as on the host: libbpf's message, naming the map.
    with pytest.raises(LibbpfError, match=r"^map 'numbers': key is 8 bytes, the map's is 4"):
        numbers.lookup(struct.pack("Q", 0))


def test_a_refobj_kept_in_a_map_is_freed_by_the_destructor(bpf):
    # The map value owns the refobj (a kptr); when the map goes, the kernel
    # drops that reference through the module's registered destructor.
    obj = bpf.load()
    alive = obj.programs["live"].test_run().retval
    assert obj.programs["stash_new"].test_run().retval == 0
    assert obj.programs["stash_new"].test_run().retval == 0  # swaps, releases the first
    assert obj.programs["live"].test_run().retval == alive + 1
    obj.close()  # the map is freed (deferred: a workqueue, after RCU)
    deadline = time.monotonic() + 10
    while True:
        with bpf.load() as fresh:
            now = fresh.programs["live"].test_run().retval
        if now == alive or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert now == alive
