// SPDX-License-Identifier: GPL-2.0
/* Uses a KF_RET_NULL result without testing it for NULL first. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct task_struct *bpf_task_from_pid(s32 pid) __ksym;
void bpf_task_release(struct task_struct *p) __ksym;

SEC("syscall")
int task_no_null_check(void *ctx)
{
	struct task_struct *task = bpf_task_from_pid(1);
	int pid = task->pid;	/* task may be NULL here */

	bpf_task_release(task);
	return pid;
}

char LICENSE[] SEC("license") = "GPL";
