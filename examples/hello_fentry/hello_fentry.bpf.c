// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The tutorial's program on fentry: calls the kfunc each time do_unlinkat() runs. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "hello_fentry_kfuncs.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* do_unlinkat() is filename_unlinkat() in 7.x (Debian's 7.2 and 7.3 have only that). */
#if KFUNC_TARGET_VERSION >= KERNEL_VERSION(7, 2, 0)
SEC("fentry/filename_unlinkat")
#else
SEC("fentry/do_unlinkat")
#endif
int BPF_PROG(handle_fentry)
{
	pid_t pid = bpf_get_current_pid_tgid() >> 32;
	u64 result = bpf_kfunc_call_test(1, 2, 3, 4);

	bpf_printk("BPF triggered do_unlinkat from PID %d. Result: %lld\n", pid, result);
	return 0;
}
