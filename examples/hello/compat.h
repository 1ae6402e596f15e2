/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shims for kernels older than the kfunc API hello.c is written in (6.9).
 * Each names the release that brought the real thing.
 */
#ifndef HELLO_COMPAT_H
#define HELLO_COMPAT_H

#include <linux/btf.h>
#include <linux/btf_ids.h>

#ifndef __bpf_kfunc			/* 6.3 */
#define __bpf_kfunc __used noinline
#endif

#ifndef __bpf_kfunc_start_defs		/* 6.7 */
#define __bpf_kfunc_start_defs()					\
	__diag_push();							\
	__diag_ignore_all("-Wmissing-prototypes",			\
			  "Global kfuncs as their definitions will be in BTF")
#define __bpf_kfunc_end_defs() __diag_pop()
#endif

#ifndef BTF_KFUNCS_START		/* 6.9 */
#define BTF_KFUNCS_START(name) BTF_SET8_START(name)
#define BTF_KFUNCS_END(name) BTF_SET8_END(name)
#endif

#endif /* HELLO_COMPAT_H */
