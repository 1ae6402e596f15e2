/* SPDX-License-Identifier: GPL-2.0 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM multimod

#if !defined(_MULTIMOD_TRACE_H) || defined(TRACE_HEADER_MULTI_READ)
#define _MULTIMOD_TRACE_H

#include <linux/tracepoint.h>

TRACE_EVENT(multimod_loaded,
	TP_PROTO(u32 base),
	TP_ARGS(base),
	TP_STRUCT__entry(__field(u32, base)),
	TP_fast_assign(__entry->base = base;),
	TP_printk("base=%u", __entry->base)
);

#endif /* _MULTIMOD_TRACE_H */

/* Found through CFLAGS_main.o := -I$(src), as in the kernel's samples/trace_events. */
#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#define TRACE_INCLUDE_FILE multimod_trace
#include <trace/define_trace.h>
