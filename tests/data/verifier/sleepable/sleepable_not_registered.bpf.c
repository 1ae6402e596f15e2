// SPDX-License-Identifier: GPL-2.0
/* examples/sleepable registers sleepable_nap() for syscall programs only;
 * a tracing program may not call it. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "sleepable_kfuncs.h"

char LICENSE[] SEC("license") = "GPL";

SEC("tp_btf/sys_enter")
int BPF_PROG(sleepable_not_registered, struct pt_regs *regs, long id)
{
	sleepable_nap(1);	/* not registered for BPF_PROG_TYPE_TRACING */
	return 0;
}
