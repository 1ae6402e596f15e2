// SPDX-License-Identifier: GPL-2.0
/* The module's kfuncs and their set, in an object of their own. */
#include <linux/bpf.h>
#include <linux/btf.h>
#include <linux/btf_ids.h>
#include <multimod/api.h>

#ifndef MULTIMOD_KFUNCS_OBJ
#error "CFLAGS_kfuncs.o was not applied"
#endif

__bpf_kfunc_start_defs();

__bpf_kfunc u64 multimod_add(u64 a, u64 b)
{
	return a + b + MULTIMOD_BASE;
}

__bpf_kfunc u32 multimod_base(void)
{
	return MULTIMOD_BASE;
}

__bpf_kfunc_end_defs();

BTF_KFUNCS_START(multimod_kfunc_ids)
BTF_ID_FLAGS(func, multimod_add)
BTF_ID_FLAGS(func, multimod_base)
BTF_KFUNCS_END(multimod_kfunc_ids)

const struct btf_kfunc_id_set multimod_kfunc_set = {
	.owner = THIS_MODULE,
	.set = &multimod_kfunc_ids,
};
