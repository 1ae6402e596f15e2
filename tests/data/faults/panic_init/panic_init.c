// SPDX-License-Identifier: GPL-2.0
/* A fault for kfunc's tests: a module whose init panics the kernel. */
#include <linux/bpf.h>
#include <linux/btf.h>
#include <linux/btf_ids.h>
#include <linux/module.h>

__bpf_kfunc int panic_init_nop(void)
{
	return 0;
}

BTF_KFUNCS_START(panic_init_ids)
BTF_ID_FLAGS(func, panic_init_nop)
BTF_KFUNCS_END(panic_init_ids)

static int __init panic_init_init(void)
{
	panic("kfunc fault test: panic in module init");
	return 0;
}
module_init(panic_init_init);
MODULE_LICENSE("GPL");
