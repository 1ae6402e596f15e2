// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* A tc classifier that asks a kfunc for its verdict. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "tc_len_kfuncs.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("tc")
int verdict(struct __sk_buff *skb)
{
	return tc_len_verdict(skb->len);
}
