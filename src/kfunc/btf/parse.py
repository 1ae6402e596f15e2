"""Parse a BTF blob into a :class:`BTF`: validated eagerly or lazily, materialized lazily.

Parsing walks the type section once and remembers where each type starts.
By default the walk also checks every record against the section bounds,
every kind and vlen, every string offset and every referenced type id, as
libbpf does on load. With ``validate=False`` the walk checks only that the
records tile the section (known kinds, nothing cut off), and each record gets
the same checks when it is first read: listing vmlinux's kfuncs reads about
250 of its 127k types, so it skips most of the work. Either way a
malformed record raises :class:`~kfunc.errors.BTFError` naming its offset.

Typed objects (see :mod:`kfunc.btf.types`) are built on first access and
cached, and the name index is built on the first lookup by name.

Split BTF (a module's, over vmlinux) continues the base's type ids and string
offsets, exactly as the kernel does for ``/sys/kernel/btf/<module>``.
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Callable, Iterator
from functools import partial
from os import PathLike
from typing import TypeAlias, TypeVar, cast, overload

from kfunc.btf import format as fmt
from kfunc.btf import types as t
from kfunc.errors import BTFError

__all__ = ["BTF", "parse_btf", "parse_btf_file"]

T = TypeVar("T", bound=t.Type)

_SPLIT_FIX = "if this is a module's (split) BTF, parse it over its vmlinux BTF as base"

# Layout by kind number; None for kinds that do not exist.
_LAYOUTS: list[fmt.Layout | None] = [fmt.LAYOUTS.get(k) for k in range(32)]

# The structural walk's tables, indexed by an info word's top byte (the kind in
# bits 0-4, kind_flag in bit 7): words before the vlen records, and words per
# vlen record. A kind that does not exist steps far past any section's end.
_PAST_ANY_END = 1 << 40
_STEP = [3 + lay.fixed if lay else _PAST_ANY_END for lay in _LAYOUTS] * 8
_STRIDE = [lay.stride if lay else 0 for lay in _LAYOUTS] * 8
_KIND_OF_TOP = bytes(top & 0x1F for top in range(256))

#: 32-bit words of a type section: a zero-copy view in the host's byte order,
#: or a byte-swapped copy of BTF written in the other order.
Words: TypeAlias = "memoryview | array[int]"


def _s32(value: int) -> int:
    return value - (1 << 32) if value & 0x80000000 else value


def _s64(value: int) -> int:
    return value - (1 << 64) if value & (1 << 63) else value


class BTF:
    """Parsed BTF: ``btf[type_id]`` gives a typed object, ``len(btf)`` the number of
    type ids (void and the base's included)."""

    def __init__(
        self,
        name: str,
        words: Words,
        strings: bytes,
        offsets: array[int],
        kinds: bytearray,
        base: BTF | None,
        types_at: int,
        lazy: bool = False,
    ) -> None:
        self.name = name
        self.base = base
        #: The first type id this BTF defines (1, or the base's len() for split BTF).
        self.start_id = len(base) if base else 1
        self._words = words
        self._strings = strings
        self._str_start: int = base._str_end if base else 0
        self._str_end: int = self._str_start + len(strings)
        self._offsets = offsets
        self._kinds = kinds
        self._types_at = types_at
        self._cache: list[t.Type | None] = [None] * len(offsets)
        self._str_cache: dict[int, str] = {}
        self._by_name: dict[str, list[int]] | None = None
        self._scanned_once = False
        self._tags_by_target: dict[int, list[int]] | None = None
        #: Records are checked as they are first read (parse_btf(validate=False));
        #: _checked marks those that were.
        self._lazy = lazy
        self._checked = bytearray(len(offsets) if lazy else 0)

    def __repr__(self) -> str:
        split = f" over {self.base.name!r}" if self.base else ""
        return f"<BTF {self.name!r}{split}: types {self.start_id}..{len(self) - 1}>"

    def __len__(self) -> int:
        return self.start_id + len(self._offsets)

    def __getitem__(self, type_id: int) -> t.Type:
        idx = type_id - self.start_id
        if idx < 0:
            if type_id == 0:
                return t.Void()
            if self.base is None or type_id < 0:
                raise KeyError(type_id)
            return self.base[type_id]
        cached = self._cache[idx]  # IndexError past the end, as for a list
        if cached is None:
            cached = self._cache[idx] = self._make(type_id, idx)
        return cached

    def name_of(self, type_id: int) -> str:
        """The name of ``type_id`` without building its object: a renderer needs
        no more of ``struct task_struct`` (and its 300 members)."""
        idx = type_id - self.start_id
        if idx < 0:
            if type_id == 0:
                return ""
            if self.base is None or type_id < 0:
                raise KeyError(type_id)
            return self.base.name_of(type_id)
        offset = self._offsets[idx]  # IndexError past the end, as for a list
        if self._lazy and not self._checked[idx]:
            self._check(idx)
        return self.string(self._words[offset])

    def kind(self, type_id: int) -> int:
        """The BTF_KIND_* number of ``type_id`` without building its object."""
        idx = type_id - self.start_id
        if idx >= 0:
            return self._kinds[idx]
        if type_id == 0:
            return fmt.BTF_KIND_UNKN
        if self.base is None or type_id < 0:
            raise KeyError(type_id)
        return self.base.kind(type_id)

    def offset_of(self, type_id: int) -> int:
        """Byte offset of ``type_id``'s record in its blob, for error messages."""
        idx = type_id - self.start_id
        if idx < 0:
            if self.base is None or type_id <= 0:
                return 0
            return self.base.offset_of(type_id)
        return self._types_at + 4 * self._offsets[idx]

    def string(self, offset: int) -> str:
        """The string at ``offset`` of the (combined, for split BTF) string section."""
        if offset < self._str_start:
            assert self.base is not None
            return self.base.string(offset)
        cached = self._str_cache.get(offset)
        if cached is None:
            if offset >= self._str_end:
                raise BTFError(
                    f"BTF {self.name}: string offset {offset} past the string section "
                    f"({self._str_end} bytes)"
                )
            strings = self._strings
            start = offset - self._str_start
            cached = strings[start : strings.index(0, start)].decode(errors="replace")
            self._str_cache[offset] = cached
        return cached

    @overload
    def types(self, kind: type[T]) -> Iterator[T]: ...
    @overload
    def types(self, kind: None = None) -> Iterator[t.Type]: ...
    def types(self, kind: type[T] | None = None) -> Iterator[t.Type]:
        """This BTF's own types (not the base's) in id order, optionally of one kind."""
        start = self.start_id
        if kind is None:
            for idx in range(len(self._offsets)):
                yield self[start + idx]
            return
        want = kind.KIND
        kinds = self._kinds
        idx = kinds.find(want)
        while idx >= 0:
            yield self[start + idx]
            idx = kinds.find(want, idx + 1)

    def _getter(self, kind: type[T]) -> Callable[[int], T]:
        """``btf[type_id]``, typed for ids known (from ``_kinds``) to be of ``kind``."""
        return cast("Callable[[int], T]", self.__getitem__)

    def funcs(self, tag: str | None = None) -> list[t.Func]:
        """This BTF's FUNCs in id order; with ``tag``, only those carrying that decl
        tag, e.g. ``funcs("bpf_kfunc")`` (kernels built with pahole >= 1.27)."""
        if tag is None:
            return list(self.types(t.Func))
        ids = {
            d.type
            for d in self.types(t.DeclTag)
            if d.name == tag
            and d.component_idx == -1
            and d.type >= self.start_id
            and self._kinds[d.type - self.start_id] == fmt.BTF_KIND_FUNC
        }
        func = self._getter(t.Func)
        return [func(i) for i in sorted(ids)]

    def decl_tags_for(self, type_id: int) -> list[t.DeclTag]:
        """DECL_TAGs that point at ``type_id`` (the type itself or its components)."""
        if self._tags_by_target is None:
            index: dict[int, list[int]] = {}
            for tag in self.types(t.DeclTag):
                index.setdefault(tag.type, []).append(tag.id)
            self._tags_by_target = index
        decl_tag = self._getter(t.DeclTag)
        own = [decl_tag(i) for i in self._tags_by_target.get(type_id, ())]
        inherited = self.base.decl_tags_for(type_id) if self.base else []
        return inherited + own

    @overload
    def find(self, name: str, kind: type[T]) -> T | None: ...
    @overload
    def find(self, name: str, kind: None = None) -> t.Type | None: ...
    def find(self, name: str, kind: type[T] | None = None) -> t.Type | None:
        """The first type (lowest id, base first) named ``name``, of class ``kind``."""
        found = self.find_all(name, kind)
        return found[0] if found else None

    @overload
    def find_all(self, name: str, kind: type[T]) -> list[T]: ...
    @overload
    def find_all(self, name: str, kind: None = None) -> list[t.Type]: ...
    def find_all(self, name: str, kind: type[T] | None = None) -> list[t.Type] | list[T]:
        """Every type named ``name`` (of class ``kind``), base types first."""
        if kind is None:
            found = self.base.find_all(name) if self.base else []
            found += map(self.__getitem__, self._ids_named(name, None))
            return found
        typed = self.base.find_all(name, kind) if self.base else []
        get = self._getter(kind)
        for type_id in self._ids_named(name, kind.KIND):
            if self._kinds[type_id - self.start_id] == kind.KIND:
                typed.append(get(type_id))
        return typed

    def resolve(self, type_id: int) -> t.Type:
        """Follow typedefs, modifiers and type tags to the underlying type."""
        seen = 0
        typ = self[type_id]
        while isinstance(typ, t.Typedef | t.Const | t.Volatile | t.Restrict | t.TypeTag):
            seen += 1
            if seen > len(self):
                raise BTFError(
                    f"BTF {self.name}: type [{type_id}] has a cyclic type chain",
                    offset=self.offset_of(type_id),
                )
            typ = self[typ.type]
        return typ

    def validate(self) -> None:
        """Check every record now, as ``parse_btf(validate=True)`` does; for BTF
        parsed with ``validate=False``. Raises :class:`BTFError` for the first
        malformed one."""
        if self._lazy:
            checked = self._checked
            for idx in range(len(self._offsets)):
                if not checked[idx]:
                    self._check(idx)
            self._lazy = False

    def _check(self, idx: int) -> None:
        """Check one record as the validating walk does (lazy mode)."""
        w = self._words
        i = self._offsets[idx]
        info = w[i + 1]
        kind = (info >> 24) & 0x1F
        vlen = info & 0xFFFF
        layout = _LAYOUTS[kind]
        assert layout is not None  # the structural walk admitted only known kinds
        str_end = self._str_end
        count = len(self)
        if vlen and not layout.stride and kind != fmt.BTF_KIND_FUNC:
            raise self._fail(idx, i + 1, f"{fmt.KIND_NAMES[kind]} with vlen {vlen}, expected 0")
        if w[i] >= str_end:
            what = f"name offset {w[i]} past the string section ({str_end} bytes)"
            raise self._fail(idx, i, what)
        for pos in layout.refs:
            if w[i + pos] >= count:
                raise self._bad_ref(idx, i + pos)
        if vlen and layout.stride:
            stride = layout.stride
            vlen_at = i + 3 + layout.fixed
            end = vlen_at + vlen * stride
            for pos in layout.vlen_names:
                if max(w[vlen_at + pos : end : stride]) >= str_end:
                    j = _first_at_least(w, vlen_at + pos, end, stride, str_end)
                    raise self._fail(idx, j, f"name offset {w[j]} past the string section")
            for pos in layout.vlen_refs:
                if max(w[vlen_at + pos : end : stride]) >= count:
                    raise self._bad_ref(idx, _first_at_least(w, vlen_at + pos, end, stride, count))
        check = _CHECKS.get(kind)
        if check is not None:
            check(w, i, vlen, partial(self._fail, idx))
        if kind == fmt.BTF_KIND_FUNC and self.kind(w[i + 2]) != fmt.BTF_KIND_FUNC_PROTO:
            what = f"FUNC points at type [{w[i + 2]}], which is not a FUNC_PROTO"
            raise self._fail(idx, i + 2, what)
        self._checked[idx] = 1

    def _fail(self, idx: int, word: int, what: str, fix: str | None = None) -> BTFError:
        return BTFError(
            f"BTF {self.name}: type [{self.start_id + idx}]: {what}",
            offset=self._types_at + 4 * word,
            fix=fix,
        )

    def _bad_ref(self, idx: int, word: int) -> BTFError:
        what = f"references type id {self._words[word]}, but the last type id is {len(self) - 1}"
        return self._fail(idx, word, what, None if self.base else _SPLIT_FIX)

    def _ids_named(self, name: str, kind: int | None) -> list[int]:
        """Own type ids named ``name`` (of ``kind``, if given; more may come back).
        The first lookup scans for that one name (a few ms on vmlinux, less for
        one rare kind); the second builds the index of every name."""
        if self._by_name is not None:
            return self._by_name.get(name, [])
        if self._scanned_once:
            self._by_name = self._index_names()
            return self._by_name.get(name, [])
        self._scanned_once = True
        return self._scan_name(name, kind)

    def _scan_name(self, name: str, kind: int | None) -> list[int]:
        if not name:
            return []  # anonymous types are not indexed by name
        needle = name.encode() + b"\0"
        words, offsets, strings = self._words, self._offsets, self._strings
        start = self._str_start
        found = []
        if kind is not None:
            # Compare each record of that kind's name in place: no scan of the
            # whole string section (2 MB in vmlinux) for the name.
            kinds = self._kinds
            idx = kinds.find(kind)
            while idx >= 0:
                off = words[offsets[idx]]
                if off >= start:
                    hit = strings.startswith(needle, off - start)
                else:  # split BTF: a name in the base's strings
                    hit = self.string(off) == name
                if hit:
                    found.append(self.start_id + idx)
                idx = kinds.find(kind, idx + 1)
            return found
        # Every occurrence is a valid name offset (a name may be a suffix of another).
        at = set()
        pos = strings.find(needle)
        while pos >= 0:
            at.add(start + pos)
            pos = strings.find(needle, pos + 1)
        names = list(map(words.__getitem__, offsets))
        for off in at:  # usually one: list.index does the scanning, in C
            idx = -1
            try:
                while True:
                    idx = names.index(off, idx + 1)
                    found.append(self.start_id + idx)
            except ValueError:
                pass
        return sorted(found)

    def _index_names(self) -> dict[str, list[int]]:
        words = self._words
        by_off: dict[int, list[int]] = {}
        start = self.start_id
        for idx, word in enumerate(self._offsets):
            name_off = words[word]
            if name_off and name_off < self._str_end:  # a bad one fails when its type is read
                by_off.setdefault(name_off, []).append(start + idx)
        return {self.string(off): ids for off, ids in by_off.items()}

    def _make(self, type_id: int, idx: int) -> t.Type:
        if self._lazy and not self._checked[idx]:
            self._check(idx)
        w = self._words
        i = self._offsets[idx]
        name = self.string(w[i])
        info = w[i + 1]
        kind = fmt.info_kind(info)
        vlen = fmt.info_vlen(info)
        kflag = fmt.info_kflag(info)
        st = w[i + 2]
        s = self.string
        if kind == fmt.BTF_KIND_INT:
            enc = w[i + 3]
            return t.Int(
                type_id, name, st, fmt.int_encoding(enc), fmt.int_offset(enc), fmt.int_bits(enc)
            )
        if kind == fmt.BTF_KIND_PTR:
            return t.Ptr(type_id, name, st)
        if kind == fmt.BTF_KIND_ARRAY:
            return t.Array(type_id, name, w[i + 3], w[i + 4], w[i + 5])
        if kind in (fmt.BTF_KIND_STRUCT, fmt.BTF_KIND_UNION):
            members = tuple(
                t.Member(
                    s(w[j]),
                    w[j + 1],
                    fmt.member_bit_offset(w[j + 2], kflag),
                    fmt.member_bitfield_size(w[j + 2], kflag),
                )
                for j in range(i + 3, i + 3 + 3 * vlen, 3)
            )
            cls = t.Struct if kind == fmt.BTF_KIND_STRUCT else t.Union
            return cls(type_id, name, st, members)
        if kind == fmt.BTF_KIND_ENUM:
            conv = _s32 if kflag else int
            values = tuple(
                t.EnumValue(s(w[j]), conv(w[j + 1])) for j in range(i + 3, i + 3 + 2 * vlen, 2)
            )
            return t.Enum(type_id, name, st, kflag, values)
        if kind == fmt.BTF_KIND_ENUM64:
            conv = _s64 if kflag else int
            values = tuple(
                t.EnumValue(s(w[j]), conv(w[j + 1] | w[j + 2] << 32))
                for j in range(i + 3, i + 3 + 3 * vlen, 3)
            )
            return t.Enum64(type_id, name, st, kflag, values)
        if kind == fmt.BTF_KIND_FWD:
            return t.Fwd(type_id, name, kflag)
        if kind == fmt.BTF_KIND_TYPEDEF:
            return t.Typedef(type_id, name, st)
        if kind == fmt.BTF_KIND_VOLATILE:
            return t.Volatile(type_id, name, st)
        if kind == fmt.BTF_KIND_CONST:
            return t.Const(type_id, name, st)
        if kind == fmt.BTF_KIND_RESTRICT:
            return t.Restrict(type_id, name, st)
        if kind == fmt.BTF_KIND_FUNC:
            return t.Func(type_id, name, st, vlen)
        if kind == fmt.BTF_KIND_FUNC_PROTO:
            params = tuple(t.Param(s(w[j]), w[j + 1]) for j in range(i + 3, i + 3 + 2 * vlen, 2))
            return t.FuncProto(type_id, name, st, params)
        if kind == fmt.BTF_KIND_VAR:
            return t.Var(type_id, name, st, w[i + 3])
        if kind == fmt.BTF_KIND_DATASEC:
            secinfos = tuple(
                t.VarSecinfo(w[j], w[j + 1], w[j + 2]) for j in range(i + 3, i + 3 + 3 * vlen, 3)
            )
            return t.Datasec(type_id, name, st, secinfos)
        if kind == fmt.BTF_KIND_FLOAT:
            return t.Float(type_id, name, st)
        if kind == fmt.BTF_KIND_DECL_TAG:
            return t.DeclTag(type_id, name, st, _s32(w[i + 3]), kflag)
        # The walk admitted no other kind.
        assert kind == fmt.BTF_KIND_TYPE_TAG
        return t.TypeTag(type_id, name, st, kflag)


def parse_btf_file(
    path: str | PathLike[str], base: BTF | None = None, *, validate: bool = True
) -> BTF:
    """Parse a raw BTF file (``/sys/kernel/btf/*`` or a ``.BTF`` section dump)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise BTFError(f"BTF {path}: cannot read: {e.strerror}") from e
    return parse_btf(data, base, name=str(path), validate=validate)


def parse_btf(
    data: bytes | bytearray | memoryview,
    base: BTF | None = None,
    *,
    name: str = "<bytes>",
    validate: bool = True,
) -> BTF:
    """Parse a BTF blob; with ``base``, as split BTF on top of it.

    Raises :class:`BTFError` naming the byte offset and the problem for any
    malformed input: at once, or with ``validate=False`` for a record only when
    it is first read (the header and the records' layout are always checked
    here; :meth:`BTF.validate` checks the rest later).
    """
    data = bytes(data)
    where = f"BTF {name}"
    if len(data) < fmt.HEADER_SIZE:
        raise BTFError(
            f"{where}: {len(data)} bytes, shorter than the {fmt.HEADER_SIZE}-byte header",
            offset=0,
        )
    magic = int.from_bytes(data[:2], "little")
    if magic == fmt.BTF_MAGIC:
        order = "<"
    elif magic == int.from_bytes(fmt.BTF_MAGIC.to_bytes(2, "big"), "little"):
        order = ">"
    else:
        raise BTFError(f"{where}: bad magic {magic:#06x}, expected {fmt.BTF_MAGIC:#06x}", offset=0)
    _, version, _, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from(
        order + fmt.HEADER_FORMAT, data
    )
    if version != fmt.BTF_VERSION:
        raise BTFError(f"{where}: unsupported BTF version {version}", offset=2)
    if hdr_len < fmt.HEADER_SIZE or hdr_len > len(data):
        raise BTFError(
            f"{where}: bad header length {hdr_len} (blob is {len(data)} bytes)", offset=4
        )
    payload = len(data) - hdr_len
    if type_off % 4 or type_len % 4:
        raise BTFError(
            f"{where}: type section offset {type_off} / length {type_len} not 4-byte aligned",
            offset=8,
        )
    if type_off + type_len > payload:
        raise BTFError(
            f"{where}: type section {type_off}+{type_len} runs past the end "
            f"({payload} bytes after the header)",
            offset=8,
        )
    if str_off + str_len > payload:
        raise BTFError(
            f"{where}: string section {str_off}+{str_len} runs past the end "
            f"({payload} bytes after the header)",
            offset=16,
        )
    if type_off < str_off + str_len and str_off < type_off + type_len:
        raise BTFError(f"{where}: type and string sections overlap", offset=8)

    str_at = hdr_len + str_off
    strings = data[str_at : str_at + str_len]
    if base is None and (not strings or strings[0] != 0):
        raise BTFError(
            f"{where}: string section does not start with an empty string",
            offset=str_at,
            fix=_SPLIT_FIX,
        )
    if strings and strings[-1] != 0:
        raise BTFError(
            f"{where}: string section is not NUL-terminated", offset=str_at + str_len - 1
        )

    types_at = hdr_len + type_off
    words: Words
    if (order == "<") == (sys.byteorder == "little"):
        words = memoryview(data)[types_at : types_at + type_len].cast("I")
    else:
        words = array("I", data[types_at : types_at + type_len])
        words.byteswap()
    str_start = base._str_end if base else 0
    start_id = len(base) if base else 1
    str_end = str_start + len(strings)
    layout = None if validate else _record_offsets(words)
    if layout is None:
        # Validating, or the records do not tile the section: the validating
        # walk finds what is wrong, and where.
        layout = _walk(words, where, types_at, start_id, str_end, base)
        validate = True
    btf = BTF(name, words, strings, *layout, base, types_at, lazy=not validate)
    if validate:
        _check_funcs(btf, where)
    return btf


def _record_offsets(words: Words) -> tuple[array[int], bytearray] | None:
    """Where each record starts (in words) and its kind, from the info words
    alone; None unless the records tile the section exactly (a truncated
    record, an unknown kind or a vlen running past the end all break it).

    This loop is most of what ``kfunc ls`` spends on vmlinux, so it is lean:
    it ends when reading the next info word runs off the section (one
    IndexError instead of a bounds test per record: 14 ms instead of 21 on
    vmlinux's 127k records), then checks that it ended exactly at the end.
    """
    offsets = array("I")
    tops = bytearray()
    add, add_top = offsets.append, tops.append
    step, stride = _STEP, _STRIDE
    i = 0
    try:
        while True:
            info = words[i + 1]
            add(i)
            top = info >> 24
            add_top(top)
            i += step[top] + (info & 0xFFFF) * stride[top]
    except IndexError:
        pass
    if i != len(words):
        return None
    return offsets, tops.translate(_KIND_OF_TOP)


def _walk(
    words: Words,
    where: str,
    types_at: int,
    start_id: int,
    str_end: int,
    base: BTF | None,
) -> tuple[array[int], bytearray]:
    """Find every type record, validating it; return (word offsets, kinds)."""
    n = len(words)
    offsets = array("I")
    kinds = bytearray()
    add_offset = offsets.append
    add_kind = kinds.append
    layouts = _LAYOUTS
    max_ref = 0
    max_ref_at = 0
    i = 0

    def fail(word: int, what: str, fix: str | None = None) -> BTFError:
        type_id = start_id + len(offsets)
        return BTFError(f"{where}: type [{type_id}]: {what}", offset=types_at + 4 * word, fix=fix)

    while i < n:
        if n - i < fmt.TYPE_WORDS:
            raise fail(i, f"truncated record ({4 * (n - i)} bytes left, need 12)")
        info = words[i + 1]
        kind = (info >> 24) & 0x1F
        vlen = info & 0xFFFF
        layout = layouts[kind]
        if layout is None:
            raise fail(i + 1, f"unknown kind {kind}")
        if layout.stride == 0 and vlen and kind != fmt.BTF_KIND_FUNC:
            raise fail(i + 1, f"{fmt.KIND_NAMES[kind]} with vlen {vlen}, expected 0")
        vlen_at = i + 3 + layout.fixed
        end = vlen_at + vlen * layout.stride
        if end > n:
            raise fail(
                i, f"{fmt.KIND_NAMES[kind]} record of {4 * (end - i)} bytes runs past the end"
            )
        if words[i] >= str_end:
            raise fail(i, f"name offset {words[i]} past the string section ({str_end} bytes)")
        for pos in layout.refs:
            if words[i + pos] > max_ref:
                max_ref = words[i + pos]
                max_ref_at = i + pos
        if vlen and layout.stride:
            for pos in layout.vlen_names:
                if max(words[vlen_at + pos : end : layout.stride]) >= str_end:
                    bad = _first_at_least(words, vlen_at + pos, end, layout.stride, str_end)
                    raise fail(bad, f"name offset {words[bad]} past the string section")
            for pos in layout.vlen_refs:
                top = max(words[vlen_at + pos : end : layout.stride])
                if top > max_ref:
                    max_ref = top
                    max_ref_at = _first_at_least(words, vlen_at + pos, end, layout.stride, top)
        if kind in _CHECKS:
            _CHECKS[kind](words, i, vlen, fail)
        add_offset(i)
        add_kind(kind)
        i = end

    count = start_id + len(offsets)
    if max_ref >= count:
        # Report against the type whose record holds the reference.
        owner = _owner(offsets, max_ref_at)
        raise BTFError(
            f"{where}: type [{start_id + owner}]: references type id {max_ref}, "
            f"but the last type id is {count - 1}",
            offset=types_at + 4 * max_ref_at,
            fix=None if base else _SPLIT_FIX,
        )
    return offsets, kinds


def _first_at_least(words: Words, start: int, end: int, step: int, bound: int) -> int:
    return next(j for j in range(start, end, step) if words[j] >= bound)


def _owner(offsets: array[int], word: int) -> int:
    """Index of the type whose record contains ``word``."""
    lo, hi = 0, len(offsets) - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if offsets[mid] <= word:
            lo = mid
        else:
            hi = mid - 1
    return lo


_Fail = Callable[[int, str], BTFError]


def _check_int(words: Words, i: int, vlen: int, fail: _Fail) -> None:
    size = words[i + 2]
    enc = words[i + 3]
    bits = fmt.int_bits(enc)
    if size not in fmt.INT_SIZES:
        raise fail(i + 2, f"INT of size {size}, expected 1, 2, 4, 8 or 16")
    if bits > 128 or fmt.int_offset(enc) + bits > 8 * size:
        raise fail(i + 3, f"INT of {bits} bits at bit {fmt.int_offset(enc)} overflows its size")


def _check_enum(words: Words, i: int, vlen: int, fail: _Fail) -> None:
    if words[i + 2] not in fmt.ENUM_SIZES:
        raise fail(i + 2, f"enum of size {words[i + 2]}, expected 1, 2, 4 or 8")


def _check_func(words: Words, i: int, vlen: int, fail: _Fail) -> None:
    if vlen not in fmt.FUNC_LINKAGE_NAMES:
        raise fail(i + 1, f"FUNC with unknown linkage {vlen}")


def _check_var(words: Words, i: int, vlen: int, fail: _Fail) -> None:
    if words[i + 3] not in fmt.VAR_LINKAGE_NAMES:
        raise fail(i + 3, f"VAR with unknown linkage {words[i + 3]}")


def _check_decl_tag(words: Words, i: int, vlen: int, fail: _Fail) -> None:
    if _s32(words[i + 3]) < -1:
        raise fail(i + 3, f"DECL_TAG with component index {_s32(words[i + 3])}")


_CHECKS = {
    fmt.BTF_KIND_INT: _check_int,
    fmt.BTF_KIND_ENUM: _check_enum,
    fmt.BTF_KIND_ENUM64: _check_enum,
    fmt.BTF_KIND_FUNC: _check_func,
    fmt.BTF_KIND_VAR: _check_var,
    fmt.BTF_KIND_DECL_TAG: _check_decl_tag,
}


def _check_funcs(btf: BTF, where: str) -> None:
    """A FUNC must point at a FUNC_PROTO (renderers rely on it)."""
    words = btf._words
    offsets = btf._offsets
    kinds = btf._kinds
    idx = kinds.find(fmt.BTF_KIND_FUNC)
    while idx >= 0:
        i = offsets[idx]
        if btf.kind(words[i + 2]) != fmt.BTF_KIND_FUNC_PROTO:
            raise BTFError(
                f"{where}: type [{btf.start_id + idx}]: FUNC points at type [{words[i + 2]}], "
                "which is not a FUNC_PROTO",
                offset=btf._types_at + 4 * (i + 2),
            )
        idx = kinds.find(fmt.BTF_KIND_FUNC, idx + 1)
