// SPDX-License-Identifier: GPL-2.0
/*
 * hello: the kfunc tutorial's module. It defines one kfunc,
 * bpf_kfunc_call_test(), and registers it for kprobe programs.
 */
#include <linux/init.h>
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/bpf.h>
#include <linux/btf.h>
#include <linux/btf_ids.h>

#include "compat.h"

__bpf_kfunc_start_defs();

__bpf_kfunc u64 bpf_kfunc_call_test(u32 a, u64 b, u32 c, u64 d)
{
	return a + b + c + d;
}

__bpf_kfunc_end_defs();

BTF_KFUNCS_START(bpf_kfunc_example_ids_set)
BTF_ID_FLAGS(func, bpf_kfunc_call_test)
BTF_KFUNCS_END(bpf_kfunc_example_ids_set)

static const struct btf_kfunc_id_set bpf_kfunc_example_set = {
	.owner = THIS_MODULE,
	.set = &bpf_kfunc_example_ids_set,
};

static int __init hello_init(void)
{
	int ret;

	pr_info("Hello, world!\n");
	ret = register_btf_kfunc_id_set(BPF_PROG_TYPE_KPROBE, &bpf_kfunc_example_set);
	if (ret) {
		pr_err("bpf_kfunc_example: Failed to register BTF kfunc ID set: %d\n", ret);
		return ret;
	}
	pr_info("bpf_kfunc_example: Module loaded successfully\n");
	return 0;
}

static void __exit hello_exit(void)
{
	/* A kfunc set is unregistered with the module's BTF when it unloads. */
	pr_info("Goodbye, world!\n");
}

module_init(hello_init);
module_exit(hello_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("kfunc");
MODULE_DESCRIPTION("The kfunc tutorial: a kfunc defined in a module");
MODULE_VERSION("1.0");
