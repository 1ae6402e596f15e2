// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Calls a KF_DESTRUCTIVE kfunc: the load needs CAP_SYS_BOOT. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "destructive_kfuncs.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("syscall")
int arm(void *ctx)
{
	return destructive_arm(0x1001);	/* 0x1001 + 1 on the first call */
}
