// SPDX-License-Identifier: GPL-2.0
/* Calls a KF_SLEEPABLE kfunc from a program that may not sleep (tp_btf, not a sleepable fentry.s/lsm.s). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

int bpf_copy_from_user_str(void *dst, u32 dst__sz, const void *unsafe_ptr__ign, u64 flags) __ksym;

char buf[64];

SEC("tp_btf/task_newtask")
int BPF_PROG(copy_str_not_sleepable, struct task_struct *task, u64 clone_flags)
{
	bpf_copy_from_user_str(buf, sizeof(buf), task->comm, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
