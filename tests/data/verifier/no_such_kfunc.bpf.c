// SPDX-License-Identifier: GPL-2.0
/* Calls a kfunc that no kernel has. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

int bpf_no_such_kfunc(int x) __ksym;

SEC("syscall")
int no_such_kfunc(void *ctx)
{
	return bpf_no_such_kfunc(1);
}

char LICENSE[] SEC("license") = "GPL";
