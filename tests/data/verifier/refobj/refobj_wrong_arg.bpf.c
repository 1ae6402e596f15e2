// SPDX-License-Identifier: GPL-2.0
/* examples/refobj: passes the current task where refobj_value() takes a refobj. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "refobj_kfuncs.h"

char LICENSE[] SEC("license") = "GPL";

SEC("tp_btf/sys_enter")
int BPF_PROG(refobj_wrong_arg, struct pt_regs *regs, long id)
{
	struct task_struct *task = bpf_get_current_task_btf();

	return refobj_value((struct refobj *)task);	/* not a refobj */
}
