// SPDX-License-Identifier: GPL-2.0
/* Declares a kfunc with a prototype the kernel's does not match: libbpf refuses. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct task_struct *bpf_task_from_pid(s32 pid) __ksym;
void bpf_task_release(void *p) __ksym;	/* the kernel's takes struct task_struct * */

SEC("syscall")
int task_release_mismatch(void *ctx)
{
	struct task_struct *task = bpf_task_from_pid(1);

	if (task)
		bpf_task_release(task);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
