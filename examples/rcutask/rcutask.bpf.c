// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Passes the current task (a trusted pointer) to a KF_RCU kfunc. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "rcutask_kfuncs.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* do_unlinkat() is filename_unlinkat() in 7.x (Debian's 7.2 and 7.3 have only that). */
#if KFUNC_TARGET_VERSION >= KERNEL_VERSION(7, 2, 0)
SEC("fentry/filename_unlinkat")
#else
SEC("fentry/do_unlinkat")
#endif
int BPF_PROG(task_tgid)
{
	struct task_struct *task = bpf_get_current_task_btf();
	s32 pid = bpf_get_current_pid_tgid() >> 32;

	bpf_printk("rcutask: tgid %d == pid %d", rcutask_tgid(task), pid);
	return 0;
}
