"""Steps on the maps of a loaded BPF object: lookup, update, keys, ring buffers."""

from __future__ import annotations

from typing import Any

from kfunc.errors import KfuncError
from kfunc.vm.agent.bpf import loaded_object
from kfunc.vm.agent.state import State, StepFailed, libbpf_failed
from kfunc.vm.protocol import (
    MapKeys,
    MapKeysReply,
    MapLookup,
    MapLookupReply,
    MapUpdate,
    MapUpdateReply,
    RingbufConsume,
    RingbufConsumeReply,
)

__all__ = ["HANDLERS"]


def _map(state: State, path: str, name: str) -> Any:
    obj = loaded_object(state, path)
    if name not in obj.maps:
        raise StepFailed(
            f"object '{obj.name}': no map {name!r}",
            f"name one of its maps: {', '.join(obj.maps) or 'none'}",
        )
    return obj.maps[name]


def map_lookup(state: State, op: MapLookup) -> MapLookupReply:
    try:
        value = _map(state, op.path, op.map).lookup(bytes.fromhex(op.key))
    except KfuncError as exc:
        raise libbpf_failed(exc) from None
    return {"map": op.map, "value": None if value is None else value.hex()}


def map_update(state: State, op: MapUpdate) -> MapUpdateReply:
    try:
        _map(state, op.path, op.map).update(
            bytes.fromhex(op.key), bytes.fromhex(op.value), op.flags
        )
    except KfuncError as exc:
        raise libbpf_failed(exc) from None
    return {"map": op.map}


def map_keys(state: State, op: MapKeys) -> MapKeysReply:
    try:
        return {"map": op.map, "keys": [k.hex() for k in _map(state, op.path, op.map)]}
    except KfuncError as exc:
        raise libbpf_failed(exc) from None


def ringbuf_consume(state: State, op: RingbufConsume) -> RingbufConsumeReply:
    from kfunc.libbpf import RingBuffer

    map_ = _map(state, op.path, op.map)
    ring = state.rings.get((op.path, op.map))
    if ring is None or ring.map is not map_ or ring._closed:
        try:
            ring = state.rings[(op.path, op.map)] = RingBuffer(map_)
        except KfuncError as exc:
            raise libbpf_failed(exc) from None
    events = ring.read(op.max_events)
    if not events and op.timeout > 0:
        ring.poll(op.timeout)
        events = ring.read(op.max_events)
    return {"map": op.map, "events": [e.hex() for e in events]}


HANDLERS: dict[type, Any] = {
    MapLookup: map_lookup,
    MapUpdate: map_update,
    MapKeys: map_keys,
    RingbufConsume: ringbuf_consume,
}
