// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Calls the hello module's kfunc each time do_unlinkat() runs. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

extern u64 bpf_kfunc_call_test(u32 a, u64 b, u32 c, u64 d) __ksym;

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("kprobe/do_unlinkat")
int handle_kprobe(void *ctx)
{
	pid_t pid = bpf_get_current_pid_tgid() >> 32;
	u64 result = bpf_kfunc_call_test(1, 2, 3, 4);

	bpf_printk("BPF triggered do_unlinkat from PID %d. Result: %lld\n", pid, result);
	return 0;
}
