// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Acquire a refobj, read it, release it: the verifier checks each step. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "refobj_kfuncs.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("syscall")
int new_value_release(void *ctx)
{
	struct refobj *obj = refobj_new(42);
	u64 value;

	if (!obj)		/* KF_RET_NULL: the check is mandatory */
		return -1;
	value = refobj_value(obj);
	refobj_release(obj);	/* KF_ACQUIRE: without it the load fails */
	return value;
}

/* For the Python tests (test_refobj.py): values from a map, through refobjs, out
 * as ring-buffer events; the sum is kept in another map. */
struct event {
	u32 seq;
	u32 pad;
	u64 value;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);		/* 0: the base value, 1: the sum of what was sent */
	__type(key, u32);
	__type(value, u64);
} numbers SEC(".maps");

struct args {
	u32 count;
};

SEC("syscall")
int emit_values(struct args *args)
{
	u32 base_key = 0, sum_key = 1;
	u64 *base = bpf_map_lookup_elem(&numbers, &base_key);
	u64 *sum = bpf_map_lookup_elem(&numbers, &sum_key);
	struct event e = {};
	u32 i;

	if (!base || !sum)
		return -1;
	for (i = 0; i < args->count && i < 16; i++) {
		struct refobj *obj = refobj_new(*base + i);

		if (!obj)
			return -1;
		e.seq = i;
		e.value = refobj_value(obj);
		refobj_release(obj);
		*sum += e.value;
		if (bpf_ringbuf_output(&events, &e, sizeof(e), 0))
			return -1;
	}
	return i;
}

/* A refobj kept in a map (test_refobj.py): the map value owns the reference
 * (a kptr), and the module's destructor drops it when the map is freed. */
struct stash_value {
	struct refobj __kfunc_kptr *obj;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct stash_value);
} stash SEC(".maps");

SEC("syscall")
int stash_new(void *ctx)
{
	u32 key = 0;
	struct stash_value *v = bpf_map_lookup_elem(&stash, &key);
	struct refobj *obj, *old;

	if (!v)
		return -1;
	obj = refobj_new(7);
	if (!obj)
		return -1;
	old = bpf_kptr_xchg(&v->obj, obj);	/* the map owns obj now */
	if (old)
		refobj_release(old);
	return 0;
}

SEC("syscall")
int live(void *ctx)
{
	return refobj_live();
}
