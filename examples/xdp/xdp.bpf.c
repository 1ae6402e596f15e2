// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* An XDP program that asks a kfunc for its verdict. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "xdp_len_kfuncs.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("xdp")
int verdict(struct xdp_md *ctx)
{
	return xdp_len_verdict(ctx->data_end - ctx->data);
}
