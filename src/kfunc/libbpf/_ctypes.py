"""libbpf's C API as ctypes declarations, under libbpf's own names.

This layer only declares: each function gets the ``restype`` and ``argtypes``
of its prototype in libbpf 1.1 (``/usr/include/bpf``), each struct the exact
layout of its C definition. Opaque libbpf objects (``struct bpf_object *``,
``struct bpf_program *`` ...) travel as ``c_void_p``. Pointer-returning
functions return NULL and set ``errno`` (libbpf 1.x), hence ``use_errno``.

The print callbacks libbpf calls receive a ``va_list``; :func:`vformat`
renders one through libc's ``vsnprintf``. On x86_64 ``va_list`` is an array
of one ``__va_list_tag`` and decays to a pointer when passed, so it crosses
ctypes as ``c_void_p``.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from ctypes import (
    CFUNCTYPE,
    POINTER,
    c_bool,
    c_char,
    c_char_p,
    c_int,
    c_long,
    c_size_t,
    c_uint32,
    c_void_p,
)
from typing import Any

from kfunc.errors import MissingToolError

LIBBPF_SONAME = "libbpf.so.1"

try:
    libbpf = ctypes.CDLL(LIBBPF_SONAME, use_errno=True)
except OSError as exc:
    raise MissingToolError(LIBBPF_SONAME, "libbpf1") from exc

# The process's own symbols, libc's among them: ctypes.util.find_library("c")
# runs `ldconfig -p` (and gcc) in a subprocess, seconds in a guest under TCG.
libc = ctypes.CDLL(None, use_errno=True)

# enum libbpf_print_level
LIBBPF_WARN = 0
LIBBPF_INFO = 1
LIBBPF_DEBUG = 2

# enum bpf_prog_type / enum bpf_map_type values this package branches on
BPF_PROG_TYPE_SYSCALL = 31
BPF_MAP_TYPE_PERCPU_HASH = 5
BPF_MAP_TYPE_PERCPU_ARRAY = 6
BPF_MAP_TYPE_LRU_PERCPU_HASH = 10
BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE = 21
BPF_MAP_TYPE_RINGBUF = 27


class bpf_object_open_opts(ctypes.Structure):
    """``struct bpf_object_open_opts`` of libbpf 1.1 (80 bytes on x86_64)."""

    _fields_ = (
        ("sz", c_size_t),
        ("object_name", c_char_p),
        ("relaxed_maps", c_bool),
        ("pin_root_path", c_char_p),
        ("_attach_prog_fd", c_uint32),  # `__u32 :32;`, the removed attach_prog_fd
        ("kconfig", c_char_p),
        ("btf_custom_path", c_char_p),
        ("kernel_log_buf", POINTER(c_char)),
        ("kernel_log_size", c_size_t),
        ("kernel_log_level", c_uint32),
    )


class bpf_test_run_opts(ctypes.Structure):
    """``struct bpf_test_run_opts`` of libbpf 1.1 (80 bytes on x86_64)."""

    _fields_ = (
        ("sz", c_size_t),
        ("data_in", c_void_p),
        ("data_out", c_void_p),
        ("data_size_in", c_uint32),
        ("data_size_out", c_uint32),
        ("ctx_in", c_void_p),
        ("ctx_out", c_void_p),
        ("ctx_size_in", c_uint32),
        ("ctx_size_out", c_uint32),
        ("retval", c_uint32),
        ("repeat", c_int),
        ("duration", c_uint32),
        ("flags", c_uint32),
        ("cpu", c_uint32),
        ("batch_size", c_uint32),
    )


# typedef int (*libbpf_print_fn_t)(enum libbpf_print_level, const char *, va_list);
libbpf_print_fn_t = CFUNCTYPE(c_int, c_int, c_char_p, c_void_p)
# typedef void (*btf_dump_printf_fn_t)(void *ctx, const char *fmt, va_list args);
btf_dump_printf_fn_t = CFUNCTYPE(None, c_void_p, c_char_p, c_void_p)
# typedef int (*ring_buffer_sample_fn)(void *ctx, void *data, size_t size);
ring_buffer_sample_fn = CFUNCTYPE(c_int, c_void_p, c_void_p, c_size_t)


def _declare(lib: ctypes.CDLL, name: str, restype: Any, *argtypes: Any) -> Callable[..., Any]:
    func = getattr(lib, name)
    func.restype = restype
    func.argtypes = list(argtypes)
    return func


_d = _declare

# libbpf.h: library
libbpf_major_version = _d(libbpf, "libbpf_major_version", c_uint32)
libbpf_minor_version = _d(libbpf, "libbpf_minor_version", c_uint32)
libbpf_strerror = _d(libbpf, "libbpf_strerror", c_int, c_int, c_char_p, c_size_t)
libbpf_set_print = _d(libbpf, "libbpf_set_print", c_void_p, libbpf_print_fn_t)
libbpf_get_error = _d(libbpf, "libbpf_get_error", c_long, c_void_p)
libbpf_num_possible_cpus = _d(libbpf, "libbpf_num_possible_cpus", c_int)
libbpf_bpf_prog_type_str = _d(libbpf, "libbpf_bpf_prog_type_str", c_char_p, c_int)
libbpf_bpf_map_type_str = _d(libbpf, "libbpf_bpf_map_type_str", c_char_p, c_int)
libbpf_prog_type_by_name = _d(
    libbpf, "libbpf_prog_type_by_name", c_int, c_char_p, POINTER(c_int), POINTER(c_int)
)

# libbpf.h: objects
bpf_object__open_file = _d(
    libbpf, "bpf_object__open_file", c_void_p, c_char_p, POINTER(bpf_object_open_opts)
)
bpf_object__load = _d(libbpf, "bpf_object__load", c_int, c_void_p)
bpf_object__close = _d(libbpf, "bpf_object__close", None, c_void_p)
bpf_object__name = _d(libbpf, "bpf_object__name", c_char_p, c_void_p)
bpf_object__next_program = _d(libbpf, "bpf_object__next_program", c_void_p, c_void_p, c_void_p)
bpf_object__next_map = _d(libbpf, "bpf_object__next_map", c_void_p, c_void_p, c_void_p)

# libbpf.h: programs
bpf_program__name = _d(libbpf, "bpf_program__name", c_char_p, c_void_p)
bpf_program__section_name = _d(libbpf, "bpf_program__section_name", c_char_p, c_void_p)
bpf_program__type = _d(libbpf, "bpf_program__type", c_int, c_void_p)
bpf_program__fd = _d(libbpf, "bpf_program__fd", c_int, c_void_p)
bpf_program__autoload = _d(libbpf, "bpf_program__autoload", c_bool, c_void_p)
bpf_program__set_autoload = _d(libbpf, "bpf_program__set_autoload", c_int, c_void_p, c_bool)
bpf_program__set_log_buf = _d(
    libbpf, "bpf_program__set_log_buf", c_int, c_void_p, POINTER(c_char), c_size_t
)
bpf_program__set_log_level = _d(libbpf, "bpf_program__set_log_level", c_int, c_void_p, c_uint32)
bpf_program__attach = _d(libbpf, "bpf_program__attach", c_void_p, c_void_p)

# libbpf.h: links
bpf_link__destroy = _d(libbpf, "bpf_link__destroy", c_int, c_void_p)

# libbpf.h: maps
bpf_map__name = _d(libbpf, "bpf_map__name", c_char_p, c_void_p)
bpf_map__fd = _d(libbpf, "bpf_map__fd", c_int, c_void_p)
bpf_map__type = _d(libbpf, "bpf_map__type", c_int, c_void_p)
bpf_map__key_size = _d(libbpf, "bpf_map__key_size", c_uint32, c_void_p)
bpf_map__value_size = _d(libbpf, "bpf_map__value_size", c_uint32, c_void_p)
bpf_map__max_entries = _d(libbpf, "bpf_map__max_entries", c_uint32, c_void_p)

# libbpf.h: ring buffers
ring_buffer__new = _d(
    libbpf, "ring_buffer__new", c_void_p, c_int, ring_buffer_sample_fn, c_void_p, c_void_p
)
ring_buffer__poll = _d(libbpf, "ring_buffer__poll", c_int, c_void_p, c_int)
ring_buffer__consume = _d(libbpf, "ring_buffer__consume", c_int, c_void_p)
ring_buffer__free = _d(libbpf, "ring_buffer__free", None, c_void_p)

# bpf.h: syscall wrappers
bpf_prog_test_run_opts = _d(
    libbpf, "bpf_prog_test_run_opts", c_int, c_int, POINTER(bpf_test_run_opts)
)
bpf_map_lookup_elem = _d(libbpf, "bpf_map_lookup_elem", c_int, c_int, c_void_p, c_void_p)
bpf_map_update_elem = _d(
    libbpf, "bpf_map_update_elem", c_int, c_int, c_void_p, c_void_p, ctypes.c_uint64
)
bpf_map_get_next_key = _d(libbpf, "bpf_map_get_next_key", c_int, c_int, c_void_p, c_void_p)

# btf.h
btf__parse = _d(libbpf, "btf__parse", c_void_p, c_char_p, c_void_p)
btf__parse_split = _d(libbpf, "btf__parse_split", c_void_p, c_char_p, c_void_p)
btf__free = _d(libbpf, "btf__free", None, c_void_p)
btf__type_cnt = _d(libbpf, "btf__type_cnt", c_uint32, c_void_p)
btf__find_by_name_kind = _d(libbpf, "btf__find_by_name_kind", c_int, c_void_p, c_char_p, c_uint32)
btf_dump__new = _d(
    libbpf, "btf_dump__new", c_void_p, c_void_p, btf_dump_printf_fn_t, c_void_p, c_void_p
)
btf_dump__dump_type = _d(libbpf, "btf_dump__dump_type", c_int, c_void_p, c_uint32)
btf_dump__free = _d(libbpf, "btf_dump__free", None, c_void_p)

# libc
vsnprintf = _d(libc, "vsnprintf", c_int, c_void_p, c_size_t, c_char_p, c_void_p)
vfprintf = _d(libc, "vfprintf", c_int, c_void_p, c_char_p, c_void_p)
open_memstream = _d(libc, "open_memstream", c_void_p, POINTER(c_void_p), POINTER(c_size_t))
fclose = _d(libc, "fclose", c_int, c_void_p)
fflush = _d(libc, "fflush", c_int, c_void_p)
free = _d(libc, "free", None, c_void_p)

# sizeof(__va_list_tag) on x86_64: gp_offset, fp_offset, overflow_arg_area, reg_save_area
_VA_LIST_TAG_SIZE = 24
_FIRST_TRY = 512


def vformat(fmt: bytes, args: int) -> str:
    """Render a printf format and its ``va_list`` (a ``__va_list_tag *``) to text.

    The first ``vsnprintf`` runs on a copy of the ``va_list`` (``va_copy`` is
    a plain copy of the tag on x86_64), so a second pass over the original is
    possible when the text does not fit the first buffer.
    """
    copy = ctypes.create_string_buffer(_VA_LIST_TAG_SIZE)
    ctypes.memmove(copy, args, _VA_LIST_TAG_SIZE)
    buf = ctypes.create_string_buffer(_FIRST_TRY)
    n = vsnprintf(buf, _FIRST_TRY, fmt, ctypes.addressof(copy))
    if n >= _FIRST_TRY:
        buf = ctypes.create_string_buffer(n + 1)
        n = vsnprintf(buf, n + 1, fmt, args)
    return buf.raw[: max(n, 0)].decode("utf-8", "replace")


def strerror(errno: int) -> str:
    """libbpf's text for a positive error number (knows libbpf's own codes too)."""
    buf = ctypes.create_string_buffer(256)
    libbpf_strerror(errno, buf, len(buf))
    return buf.value.decode("utf-8", "replace")
