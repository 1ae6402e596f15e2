"""Small kernel source trees, one per era of helper and kfunc declarations, for
the survey tests. Each snippet follows the real shape of that release's files
(include/uapi/linux/bpf.h, net/ipv4/bpf_tcp_ca.c, net/core/xdp.c ...)."""

from __future__ import annotations

from pathlib import Path

BPF_H_ENUM = """\
/* 3.18: the enum written out */
enum bpf_func_id {
	BPF_FUNC_unspec,
	BPF_FUNC_map_lookup_elem, /* void *map_lookup_elem(&map, &key) */
	BPF_FUNC_map_update_elem,
	BPF_FUNC_map_delete_elem,
	__BPF_FUNC_MAX_ID,
};
"""

BPF_H_FN1 = """\
#define __BPF_FUNC_MAPPER(FN)		\\
	FN(unspec),			\\
	FN(map_lookup_elem),		\\
	FN(map_update_elem),		\\
	FN(map_delete_elem),		\\
	FN(probe_read),			\\
	/* a comment: FN(not_a_helper) */	\\
	FN(ktime_get_ns),

#define __BPF_ENUM_FN(x) BPF_FUNC_ ## x
enum bpf_func_id {
	__BPF_FUNC_MAPPER(__BPF_ENUM_FN)
	__BPF_FUNC_MAX_ID,
};
"""

BPF_H_FN3 = """\
#define ___BPF_FUNC_MAPPER(FN, ctx...)			\\
	FN(unspec, 0, ##ctx)				\\
	FN(map_lookup_elem, 1, ##ctx)			\\
	FN(map_update_elem, 2, ##ctx)			\\
	FN(map_delete_elem, 3, ##ctx)			\\
	FN(probe_read, 4, ##ctx)			\\
	FN(ktime_get_ns, 5, ##ctx)			\\
	FN(cgrp_storage_delete, 6, ##ctx)		\\
	/* */

#define __BPF_FUNC_MAPPER_APPLY(name, value, FN) FN(name),
#define __BPF_FUNC_MAPPER(FN) ___BPF_FUNC_MAPPER(__BPF_FUNC_MAPPER_APPLY, FN)
#define __BPF_ENUM_FN(x, y) BPF_FUNC_ ## x = y,
enum bpf_func_id {
	___BPF_FUNC_MAPPER(__BPF_ENUM_FN)
	__BPF_FUNC_MAX_ID,
};
"""

# 5.13: a plain set tested by a check_kfunc_call callback.
TCP_CA_513 = """\
BTF_SET_START(bpf_tcp_ca_kfunc_ids)
BTF_ID(func, tcp_reno_ssthresh)
BTF_ID(func, tcp_slow_start)
#ifdef CONFIG_X86
BTF_ID(func, cubictcp_init)
#endif
BTF_SET_END(bpf_tcp_ca_kfunc_ids)

static bool bpf_tcp_ca_check_kfunc_call(u32 kfunc_btf_id)
{
	return btf_id_set_contains(&bpf_tcp_ca_kfunc_ids, kfunc_btf_id);
}
"""

# Not kfuncs: a deny list and the verifier's own check_kfunc_call().
VERIFIER = """\
BTF_SET_START(btf_id_deny)
BTF_ID_UNUSED
BTF_ID(func, migrate_disable)
BTF_SET_END(btf_id_deny)

BTF_SET_START(special_kfunc_set)
BTF_ID(func, bpf_obj_new_impl)
BTF_SET_END(special_kfunc_set)

static int check_kfunc_call(struct bpf_verifier_env *env, struct bpf_insn *insn)
{
	if (btf_id_set_contains(&special_kfunc_set, insn->imm))
		return 0;
	return btf_id_set_contains(&btf_id_deny, insn->imm);
}
"""

TEST_RUN = """\
BTF_SET_START(test_sk_kfunc_ids)
BTF_ID(func, bpf_kfunc_call_test1)
BTF_SET_END(test_sk_kfunc_ids)

bool bpf_prog_test_check_kfunc_call(u32 kfunc_id, struct module *owner)
{
	return btf_id_set_contains(&test_sk_kfunc_ids, kfunc_id);
}
"""

# 5.16: a module's set through DEFINE_KFUNC_BTF_ID_SET.
TCP_BBR_516 = """\
BTF_SET_START(tcp_bbr_kfunc_ids)
BTF_ID(func, bbr_init)
BTF_ID(func, bbr_main)
BTF_SET_END(tcp_bbr_kfunc_ids)

static DEFINE_KFUNC_BTF_ID_SET(&tcp_bbr_kfunc_ids, tcp_bbr_kfunc_btf_set);

static int __init bbr_register(void)
{
	register_kfunc_btf_id_set(&bpf_tcp_ca_kfunc_list, &tcp_bbr_kfunc_btf_set);
	return 0;
}
"""

# 5.18: struct btf_kfunc_id_set with check/acquire/release sets.
NF_CT_518 = """\
BTF_SET_START(nf_ct_xdp_check_kfunc_ids)
BTF_ID(func, bpf_xdp_ct_lookup)
BTF_ID(func, bpf_ct_release)
BTF_SET_END(nf_ct_xdp_check_kfunc_ids)

BTF_SET_START(nf_ct_acquire_kfunc_ids)
BTF_ID(func, bpf_xdp_ct_lookup)
BTF_SET_END(nf_ct_acquire_kfunc_ids)

static const struct btf_kfunc_id_set nf_conntrack_xdp_kfunc_set = {
	.owner        = THIS_MODULE,
	.check_set    = &nf_ct_xdp_check_kfunc_ids,
	.acquire_set  = &nf_ct_acquire_kfunc_ids,
};

int register_nf_conntrack_bpf(void)
{
	return register_btf_kfunc_id_set(BPF_PROG_TYPE_XDP, &nf_conntrack_xdp_kfunc_set);
}
"""

# 6.0+: set8 with flags.
HELPERS_C_60 = """\
BTF_SET8_START(generic_btf_ids)
BTF_ID_FLAGS(func, bpf_obj_new_impl, KF_ACQUIRE | KF_RET_NULL)
BTF_ID_FLAGS(func, bpf_task_acquire,
		KF_ACQUIRE | KF_TRUSTED_ARGS)
BTF_SET8_END(generic_btf_ids)

static const struct btf_kfunc_id_set generic_kfunc_set = {
	.owner = THIS_MODULE,
	.set   = &generic_btf_ids,
};

static int __init kfunc_init(void)
{
	return register_btf_kfunc_id_set(BPF_PROG_TYPE_TRACING,
						&generic_kfunc_set);
}
"""

MPTCP_FMODRET = """\
BTF_SET8_START(bpf_mptcp_fmodret_ids)
BTF_ID_FLAGS(func, update_socket_protocol)
BTF_SET8_END(bpf_mptcp_fmodret_ids)

static const struct btf_kfunc_id_set bpf_mptcp_fmodret_set = {
	.owner = THIS_MODULE,
	.set   = &bpf_mptcp_fmodret_ids,
};

static int __init bpf_mptcp_kfunc_init(void)
{
	return register_btf_fmodret_id_set(&bpf_mptcp_fmodret_set);
}
"""

XDP_H = """\
#define XDP_METADATA_KFUNC_xxx	\\
	XDP_METADATA_KFUNC(XDP_METADATA_KFUNC_RX_TIMESTAMP, \\
				NETDEV_XDP_RX_METADATA_TIMESTAMP, \\
				bpf_xdp_metadata_rx_timestamp, \\
				xmo_rx_timestamp) \\
	XDP_METADATA_KFUNC(XDP_METADATA_KFUNC_RX_HASH, \\
				NETDEV_XDP_RX_METADATA_HASH, \\
				bpf_xdp_metadata_rx_hash, \\
				xmo_rx_hash)
"""

XDP_C = """\
BTF_KFUNCS_START(xdp_metadata_kfunc_ids)
#define XDP_METADATA_KFUNC(_, __, name, ___) BTF_ID_FLAGS(func, name, KF_TRUSTED_ARGS)
XDP_METADATA_KFUNC_xxx
#undef XDP_METADATA_KFUNC
BTF_KFUNCS_END(xdp_metadata_kfunc_ids)

static const struct btf_kfunc_id_set xdp_metadata_kfunc_set = {
	.owner = THIS_MODULE,
	.set   = &xdp_metadata_kfunc_ids,
};
"""

# 6.9+: BTF_KFUNCS_START.
CPUMASK_69 = """\
BTF_KFUNCS_START(cpumask_kfunc_btf_ids)
BTF_ID_FLAGS(func, bpf_cpumask_create, KF_ACQUIRE | KF_RET_NULL)
BTF_ID_FLAGS(func, bpf_task_acquire)
BTF_KFUNCS_END(cpumask_kfunc_btf_ids)
"""

TESTMOD = """\
BTF_KFUNCS_START(bpf_testmod_check_kfunc_ids)
BTF_ID_FLAGS(func, bpf_testmod_test_mod_kfunc)
BTF_KFUNCS_END(bpf_testmod_check_kfunc_ids)
"""


def tree_files(era: str) -> dict[str, str]:
    """The files of a tree at ``era`` (3.18, 4.20, 5.13, 5.16, 5.18, 6.2, 6.9),
    cumulative as a real tree is."""
    order = ["3.18", "4.20", "5.13", "5.16", "5.18", "6.2", "6.9"]
    upto = order[: order.index(era) + 1]
    files = {"Makefile": f"VERSION = {era.split('.')[0]}\nPATCHLEVEL = {era.split('.')[1]}\n"
             "SUBLEVEL = 0\nEXTRAVERSION =\n"}  # fmt: skip
    files["include/uapi/linux/bpf.h"] = BPF_H_ENUM
    if "4.20" in upto:
        files["include/uapi/linux/bpf.h"] = BPF_H_FN1
    if "5.13" in upto:
        files["net/ipv4/bpf_tcp_ca.c"] = TCP_CA_513
        files["kernel/bpf/verifier.c"] = VERIFIER
        files["net/bpf/test_run.c"] = TEST_RUN
        files["kernel/bpf/unrelated.c"] = "int x;\n"
    if "5.16" in upto:
        files["net/ipv4/tcp_bbr.c"] = TCP_BBR_516
    if "5.18" in upto:
        files["net/netfilter/nf_conntrack_bpf.c"] = NF_CT_518
    if "6.2" in upto:
        files["include/uapi/linux/bpf.h"] = BPF_H_FN3
        files["kernel/bpf/helpers.c"] = HELPERS_C_60
        files["net/mptcp/bpf.c"] = MPTCP_FMODRET
        files["include/net/xdp.h"] = XDP_H
        files["net/core/xdp.c"] = XDP_C
    if "6.9" in upto:
        files["kernel/bpf/cpumask.c"] = CPUMASK_69
        files["tools/testing/selftests/bpf/bpf_testmod/bpf_testmod.c"] = TESTMOD
        files["samples/bpf/kfunc.c"] = TESTMOD
    return files


# What each era must count.
EXPECTED_HELPERS = {"3.18": 3, "4.20": 5, "5.13": 5, "5.16": 5, "5.18": 5, "6.2": 6, "6.9": 6}
_K513 = {"tcp_reno_ssthresh", "tcp_slow_start", "cubictcp_init"}
_K516 = _K513 | {"bbr_init", "bbr_main"}
_K518 = _K516 | {"bpf_xdp_ct_lookup", "bpf_ct_release"}
_K62 = _K518 | {
    "bpf_obj_new_impl",
    "bpf_task_acquire",
    "bpf_xdp_metadata_rx_timestamp",
    "bpf_xdp_metadata_rx_hash",
}
EXPECTED_KFUNCS: dict[str, set[str]] = {
    "3.18": set(),
    "4.20": set(),
    "5.13": _K513,
    "5.16": _K516,
    "5.18": _K518,
    "6.2": _K62,
    "6.9": _K62 | {"bpf_cpumask_create"},
}


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root
