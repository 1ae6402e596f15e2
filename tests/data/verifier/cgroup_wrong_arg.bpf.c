// SPDX-License-Identifier: GPL-2.0
/* Passes a task where the kfunc takes a cgroup. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

struct cgroup *bpf_cgroup_acquire(struct cgroup *cgrp) __ksym;
void bpf_cgroup_release(struct cgroup *cgrp) __ksym;

SEC("tp_btf/task_newtask")
int BPF_PROG(cgroup_wrong_arg, struct task_struct *task, u64 clone_flags)
{
	struct cgroup *cgrp = bpf_cgroup_acquire((struct cgroup *)task);

	if (cgrp)
		bpf_cgroup_release(cgrp);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
