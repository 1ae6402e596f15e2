// SPDX-License-Identifier: GPL-2.0
/* Releases a task pointer it never acquired. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

void bpf_task_release(struct task_struct *p) __ksym;

SEC("tp_btf/task_newtask")
int BPF_PROG(task_release_unacquired, struct task_struct *task, u64 clone_flags)
{
	bpf_task_release(task);	/* the tracepoint lent it; nothing to release */
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
