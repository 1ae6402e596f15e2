// SPDX-License-Identifier: GPL-2.0
/* A fault for kfunc's tests: a module whose init never returns. */
#include <linux/bpf.h>
#include <linux/btf.h>
#include <linux/btf_ids.h>
#include <linux/delay.h>
#include <linux/module.h>

__bpf_kfunc int hang_init_nop(void)
{
	return 0;
}

BTF_KFUNCS_START(hang_init_ids)
BTF_ID_FLAGS(func, hang_init_nop)
BTF_KFUNCS_END(hang_init_ids)

static int __init hang_init_init(void)
{
	pr_info("hang_init: looping forever\n");
	for (;;)
		msleep(1000);
	return 0;
}
module_init(hang_init_init);
MODULE_LICENSE("GPL");
