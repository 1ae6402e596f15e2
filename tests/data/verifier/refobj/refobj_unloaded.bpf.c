// SPDX-License-Identifier: GPL-2.0
/* examples/refobj: correct, but loaded when the refobj module is not. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "refobj_kfuncs.h"

char LICENSE[] SEC("license") = "GPL";

SEC("syscall")
int refobj_unloaded(void *ctx)
{
	struct refobj *obj = refobj_new(7);

	if (!obj)
		return -1;
	refobj_release(obj);
	return 0;
}
