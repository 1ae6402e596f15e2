"""Ring-buffer consumption: kfunc.libbpf.RingBuffer from Python beside a C libbpf consumer.

On the host kernel (root, BTF): a syscall program writes --events small events
(one u64 each, 16 bytes a record with its header) into a ring buffer with
bpf_loop + bpf_ringbuf_output per BPF_PROG_TEST_RUN. After each run the
consumer under test drains the ring; only the drain is timed. Each figure is
the best of --reps rounds, in million events per second. The C consumer is
compiled in the same run (gcc, libbpf-dev) and uses libbpf's
ring_buffer__consume with a counting callback; it loads the same object.

    .venv/bin/python bench/ringbuf.py [--events 1048576] [--reps 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from kfunc.clang import compile_bpf
from kfunc.libbpf import KERNEL_BTF, BpfObject, RingBuffer, write_vmlinux_h

BPF_C = r"""
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 32 << 20);
} events SEC(".maps");

struct args { u32 count; };

static long emit_one(u64 i, void *ctx)
{
	bpf_ringbuf_output(&events, &i, sizeof(i), BPF_RB_NO_WAKEUP);
	return 0;
}

SEC("syscall")
int emit(struct args *args)
{
	return bpf_loop(args->count, emit_one, NULL, 0);
}

char LICENSE[] SEC("license") = "GPL";
"""

C_CONSUMER = r"""
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <bpf/libbpf.h>
#include <bpf/bpf.h>

static unsigned long long seen, sum;

static int on_event(void *ctx, void *data, size_t size)
{
	seen++;
	sum += *(unsigned long long *)data;
	return 0;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	unsigned int count = atoi(argv[2]);
	int reps = atoi(argv[3]);
	double best = 1e9;
	struct bpf_object *obj = bpf_object__open_file(argv[1], NULL);

	if (!obj || bpf_object__load(obj))
		return 1;
	int prog = bpf_program__fd(bpf_object__find_program_by_name(obj, "emit"));
	int map = bpf_object__find_map_fd_by_name(obj, "events");
	struct ring_buffer *rb = ring_buffer__new(map, on_event, NULL, NULL);
	if (!rb)
		return 1;
	for (int r = 0; r < reps; r++) {
		LIBBPF_OPTS(bpf_test_run_opts, opts, .ctx_in = &count, .ctx_size_in = sizeof(count));
		if (bpf_prog_test_run_opts(prog, &opts) || opts.retval != count)
			return 2;
		seen = 0;
		double t0 = now();
		ring_buffer__consume(rb);
		double t = now() - t0;
		if (seen != count)
			return 3;
		if (t < best)
			best = t;
	}
	printf("%f\n", best);
	ring_buffer__free(rb);
	bpf_object__close(obj);
	return 0;
}
"""


def best_drain(
    obj: BpfObject, count: int, reps: int, drain: Callable[[], int], check: Callable[[], None]
) -> float:
    emit = obj.programs["emit"]
    best = float("inf")
    for _ in range(reps):
        if emit.test_run(ctx_in=struct.pack("I", count)).retval != count:
            raise SystemExit("the producer did not write every event (ring buffer full?)")
        start = time.perf_counter()
        got = drain()
        best = min(best, time.perf_counter() - start)
        if got != count:
            raise SystemExit(f"drained {got} events of {count}")
        check()
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1 << 20, help="events per round (<= 2M)")
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    if os.geteuid() != 0 or not KERNEL_BTF.exists():
        print("needs root and the host kernel's BTF", file=sys.stderr)
        return 1
    if shutil.which("gcc") is None:
        print("gcc not installed (apt-get install gcc libbpf-dev)", file=sys.stderr)
        return 1
    n, reps = args.events, args.reps
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="kfunc-bench-") as tmp:
        d = Path(tmp)
        header = write_vmlinux_h(KERNEL_BTF, d / "vmlinux.h")
        (d / "rb.bpf.c").write_text(BPF_C)
        obj_path = compile_bpf(d / "rb.bpf.c", d / "rb.bpf.o", include_dirs=[header.parent])
        (d / "consumer.c").write_text(C_CONSUMER)
        exe = d / "consumer"
        subprocess.run(["gcc", "-O2", "-o", str(exe), str(d / "consumer.c"), "-lbpf"], check=True)
        out = subprocess.run(
            [str(exe), str(obj_path), str(n), str(reps)], capture_output=True, text=True
        )
        if out.returncode:
            print(f"C consumer failed (exit {out.returncode})", file=sys.stderr)
            return 1
        results["C, libbpf ring_buffer__consume + callback"] = float(out.stdout)

        with BpfObject(obj_path) as obj:
            obj.load()
            events = obj.maps["events"]
            with RingBuffer(events) as ring:
                batch: list[bytes] = []

                def read_bytes(ring: RingBuffer = ring) -> int:
                    batch[:] = ring.read()
                    return len(batch)

                def check_bytes() -> None:
                    assert batch[-1] == struct.pack("<Q", n - 1)

                results["Python, RingBuffer.read() -> bytes (mmap)"] = best_drain(
                    obj, n, reps, read_bytes, check_bytes
                )
            with RingBuffer(events, event_type="<Q") as ring:
                decoded: list[tuple[int]] = []

                def read_tuples(ring: RingBuffer = ring) -> int:
                    decoded[:] = ring.read()
                    return len(decoded)

                def check_tuples() -> None:
                    assert decoded[-1] == (n - 1,)

                results['Python, RingBuffer(event_type="<Q").read() -> tuples (mmap)'] = best_drain(
                    obj, n, reps, read_tuples, check_tuples
                )
            seen = [0]

            def count(event: bytes) -> None:
                seen[0] += 1

            with RingBuffer(events, count) as ring:
                results["Python, RingBuffer(callback).consume() (mmap)"] = best_drain(
                    obj, n, reps, ring.consume, lambda: None
                )
            with RingBuffer(events, count, reader="libbpf") as ring:
                results["Python, libbpf ring_buffer__consume + ctypes callback"] = best_drain(
                    obj, n, reps, ring.consume, lambda: None
                )

    print(f"{n} events of 8 bytes per round, best of {reps} rounds")
    width = max(map(len, results))
    c = results["C, libbpf ring_buffer__consume + callback"]
    for name, seconds in results.items():
        rate = n / seconds / 1e6
        print(f"{name:<{width}}  {rate:7.2f} M events/s  ({seconds / c:5.1f}x C's time)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
