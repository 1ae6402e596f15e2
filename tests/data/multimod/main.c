// SPDX-License-Identifier: GPL-2.0
/* multimod: registers the kfunc set kfuncs.c defines, and fires a tracepoint. */
#include <linux/init.h>
#include <linux/module.h>
#include <linux/bpf.h>
#include <multimod/api.h>

#define CREATE_TRACE_POINTS
#include "multimod_trace.h"

static int __init multimod_init(void)
{
	int ret = register_btf_kfunc_id_set(BPF_PROG_TYPE_SYSCALL, &multimod_kfunc_set);

	if (ret)
		return ret;
	trace_multimod_loaded(MULTIMOD_BASE);
	return 0;
}

static void __exit multimod_exit(void)
{
}

module_init(multimod_init);
module_exit(multimod_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Two objects, their own flags, a header in include/, a tracepoint");
