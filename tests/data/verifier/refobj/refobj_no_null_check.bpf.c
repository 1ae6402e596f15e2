// SPDX-License-Identifier: GPL-2.0
/* examples/refobj: refobj_new() is KF_RET_NULL; its result is used unchecked. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "refobj_kfuncs.h"

char LICENSE[] SEC("license") = "GPL";

SEC("syscall")
int refobj_no_null_check(void *ctx)
{
	struct refobj *obj = refobj_new(7);
	u64 value;

	value = refobj_value(obj);	/* obj may be NULL */
	refobj_release(obj);
	return value;
}
