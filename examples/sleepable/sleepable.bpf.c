// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* A syscall program is sleepable, so it may call a KF_SLEEPABLE kfunc. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "sleepable_kfuncs.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("syscall")
int nap(void *ctx)
{
	return sleepable_nap(100);	/* 1 when it slept at least 100 us */
}
