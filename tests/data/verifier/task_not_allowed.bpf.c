// SPDX-License-Identifier: GPL-2.0
/* Calls a kfunc from a program type it is not registered for. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct task_struct *bpf_task_from_pid(s32 pid) __ksym;
void bpf_task_release(struct task_struct *p) __ksym;

SEC("socket")
int task_not_allowed(struct __sk_buff *skb)
{
	struct task_struct *task = bpf_task_from_pid(1);

	if (task)
		bpf_task_release(task);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
