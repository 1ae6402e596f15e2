/* SPDX-License-Identifier: GPL-2.0 */
#ifndef MULTIMOD_API_H
#define MULTIMOD_API_H

#include <linux/btf.h>

#ifndef MULTIMOD_BASE
#error "ccflags-y was not applied: no MULTIMOD_BASE"
#endif

extern const struct btf_kfunc_id_set multimod_kfunc_set;

#endif
