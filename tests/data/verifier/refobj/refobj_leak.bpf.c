// SPDX-License-Identifier: GPL-2.0
/* examples/refobj: acquires a refobj and returns without releasing it. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "refobj_kfuncs.h"

char LICENSE[] SEC("license") = "GPL";

SEC("syscall")
int refobj_leak(void *ctx)
{
	struct refobj *obj = refobj_new(7);

	if (!obj)
		return -1;
	return refobj_value(obj);	/* refobj_release(obj) is missing */
}
