"""BPF C as people write it, compiled by kfunc build with libbpf-bootstrap's flags.

One project, three styles: a program on ``<linux/bpf.h>`` with typedefs of its
own (needs the multiarch include dir, passed with ``-idirafter``), one on
vmlinux.h with a project header that defines the module's types itself (as the
selftests' bpf_testmod_kfunc.h does), and one on vmlinux.h with kfunc's
generated ``<module>_kfuncs.h``, which brings the module's types from its BTF.
Host only: kbuild and clang for 6.12, no boot.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kfunc.btf import types as bt
from kfunc.build import build_project
from kfunc.elf import ElfObject
from kfunc.project import Project

MODULE = r"""
#include <linux/bpf.h>
#include <linux/btf.h>
#include <linux/btf_ids.h>
#include <linux/module.h>

struct styles_arg {
	int x;
	int y;
};

__bpf_kfunc_start_defs();
__bpf_kfunc int styles_sum(struct styles_arg *a)
{
	return a->x + a->y;
}
__bpf_kfunc_end_defs();

BTF_KFUNCS_START(styles_ids)
BTF_ID_FLAGS(func, styles_sum)
BTF_KFUNCS_END(styles_ids)

static const struct btf_kfunc_id_set styles_set = {
	.owner = THIS_MODULE,
	.set = &styles_ids,
};

static int __init styles_init(void)
{
	return register_btf_kfunc_id_set(BPF_PROG_TYPE_SCHED_CLS, &styles_set);
}

static void __exit styles_exit(void)
{
}

module_init(styles_init);
module_exit(styles_exit);
MODULE_LICENSE("GPL");
"""

# The project's own BPF-side header, which defines the module's struct (a clash
# with a vmlinux.h that had the module's types in it).
OWN_HEADER = r"""
#ifndef STYLES_KFUNC_H
#define STYLES_KFUNC_H
struct styles_arg {
	int x;
	int y;
};
int styles_sum(struct styles_arg *a) __ksym;
#endif
"""

CALLER = r"""
SEC("tc")
int NAME(struct __sk_buff *skb)
{
	struct styles_arg a = { .x = 1, .y = 2 };

	return styles_sum(&a);
}

char LICENSE[] SEC("license") = "GPL";
"""

PROGRAMS = {
    "own.bpf.c": '#include "vmlinux.h"\n#include <bpf/bpf_helpers.h>\n#include "styles_kfunc.h"\n'
    + CALLER.replace("NAME", "own"),
    "gen.bpf.c": '#include "vmlinux.h"\n#include <bpf/bpf_helpers.h>\n#include "styles_kfuncs.h"\n'
    + CALLER.replace("NAME", "gen"),
    "uapi.bpf.c": r"""
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

typedef unsigned int u32;

SEC("tc")
int uapi(struct __sk_buff *skb)
{
	u32 len = skb->len;

	return len > 100 ? TC_ACT_SHOT : TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
""",
}


def test_three_styles_in_one_project(kernel_612: Any, tmp_path: Path) -> None:
    project_dir = tmp_path / "styles"
    project_dir.mkdir()
    (project_dir / "styles.c").write_text(MODULE)
    (project_dir / "Kbuild").write_text("obj-m += styles.o\n")
    (project_dir / "styles_kfunc.h").write_text(OWN_HEADER)
    for name, text in PROGRAMS.items():
        (project_dir / name).write_text(text)
    built = build_project(Project.load(project_dir), kernel_612)
    objects = {o.name: o for o in built.objects}
    assert set(objects) == {"own.bpf.o", "gen.bpf.o", "uapi.bpf.o"}
    # The module's struct reaches the programs' BTF as a struct, not a forward
    # declaration: from the project's header, and from the generated one.
    for name in ("own.bpf.o", "gen.bpf.o"):
        arg = ElfObject(objects[name]).btf().find("styles_arg", bt.Struct)
        assert arg is not None and [m.name for m in arg.members] == ["x", "y"], name
    # vmlinux.h is the kernel's: the module's types are in a header of their own.
    assert built.header is not None
    types_h = next(Path(str(o.parent)) for o in built.objects) / "include" / "styles_types.h"
    assert "struct styles_arg {" in types_h.read_text()
    assert '#include "styles_types.h"' in built.header.read_text()
