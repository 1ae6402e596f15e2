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
