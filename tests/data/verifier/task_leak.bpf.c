// SPDX-License-Identifier: GPL-2.0
/* Acquires a task and never releases it: "Unreleased reference". */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct task_struct *bpf_task_from_pid(s32 pid) __ksym;
void bpf_task_release(struct task_struct *p) __ksym;

SEC("syscall")
int task_leak(void *ctx)
{
	struct task_struct *task = bpf_task_from_pid(1);

	if (!task)
		return 0;
	return task->pid;	/* bpf_task_release(task) is missing */
}

char LICENSE[] SEC("license") = "GPL";
