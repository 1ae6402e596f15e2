"""The seed tutorial's own code, exactly as written, through kfunc.

The tutorial (shared/seed/kfuncs-in-kernel-modules.md, beside the clone) is
read at test time and its code blocks are written into a directory: hello.c,
its Makefile (recipe lines indented by spaces, as the page has them) and the
BPF program as kfunc.bpf.c. On 6.12 it prints ``Result: 10``; 6.1 refuses
it before booting (kprobe programs call kfuncs from 6.10; the 6.9 kfunc API);
7.3 too (do_unlinkat is filename_unlinkat there). With ``kfunc compat``'s
header added, the same hello.c builds with BTF on 6.1, 6.12 and 7.3.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, qemu_processes, require

from kfunc.build import build_project
from kfunc.errors import BuildError, CheckError
from kfunc.kbuild import ModuleSource, build_module
from kfunc.kernels.target import Kernel
from kfunc.project import Project

SEED = Path(
    os.environ.get("KFUNC_SEED", ROOT.parent / "shared" / "seed" / "kfuncs-in-kernel-modules.md")
)


def write_seed(directory: Path) -> Path:
    """The seed's hello.c, Makefile and BPF program, verbatim, in ``directory``."""
    require(SEED.is_file(), f"the seed tutorial is not at {SEED} (set KFUNC_SEED)")
    blocks = re.findall(r"```(\w*)\n(.*?)```", SEED.read_text(), re.S)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "hello.c").write_text(
        next(b for k, b in blocks if k == "c" and "module_init" in b)
    )
    (directory / "Makefile").write_text(next(b for k, b in blocks if k == "makefile"))
    (directory / "kfunc.bpf.c").write_text(next(b for k, b in blocks if k == "c" and 'SEC("' in b))
    return directory


@pytest.fixture
def seed(tmp_path: Path) -> Path:
    return write_seed(tmp_path / "seed")


def kfunc(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kfunc", *args], capture_output=True, text=True, timeout=timeout
    )


def test_the_seed_is_written_as_the_page_has_it(seed: Path) -> None:
    makefile = (seed / "Makefile").read_text()
    assert "\n    make -C /lib/modules/$(shell uname -r)/build M=$(PWD) modules" in makefile
    assert "\t" not in makefile
    assert "KBUILD_CFLAGS += -g -O2" in makefile
    hello = (seed / "hello.c").read_text()
    assert "// unregister_btf_kfunc_id_set(BPF_PROG_TYPE_UNSPEC" in hello
    assert "#include <linux/bpf.h>" in (seed / "kfunc.bpf.c").read_text()


def test_seed_program_saved_as_kfunc_c(seed: Path, kernel_612: Kernel) -> None:
    """The page does not name the BPF file; its loader is ./kfunc, so kfunc.c is
    a likely name. kfunc takes *.bpf.c only: build warns, run refuses before
    fetching a kernel, both naming the file and the fixes."""
    (seed / "kfunc.bpf.c").rename(seed / "kfunc.c")
    built = build_project(Project.load(seed), kernel_612)
    assert built.objects == []
    assert built.warnings == [
        "kfunc.c has SEC() programs, but kfunc builds *.bpf.c files only: rename it, "
        "or list it in kfunc.toml's [bpf] sources"
    ]
    run = kfunc("run", str(seed), "--kernel", "6.1,6.12")
    assert run.returncode == 1
    assert run.stderr.splitlines() == [
        f"error: {seed}: no BPF program (*.bpf.c) to run; kfunc.c has SEC() programs, but "
        "kfunc takes *.bpf.c files only",
        'fix: rename kfunc.c to kfunc.bpf.c, or list it in kfunc.toml: [bpf] sources = ["kfunc.c"]',
    ]


def test_seed_refused_before_boot_on_61(seed: Path, kernel_61: Kernel) -> None:
    with pytest.raises(CheckError) as info:
        build_project(Project.load(seed), kernel_61)
    message, fix = info.value.message, info.value.fix or ""
    assert "kprobe programs may call kfuncs only from Linux 6.10 on" in message
    assert "uses the kfunc API of Linux 6.9" in message
    assert "BTF_KFUNCS_START (6.9)" in message and "__bpf_kfunc (6.3)" in message
    assert "kfunc compat -o" in fix and 'SEC("fentry/<function>")' in fix


def test_seed_on_73_names_filename_unlinkat(seed: Path, kernel_73: Kernel) -> None:
    with pytest.raises(CheckError) as info:
        build_project(Project.load(seed), kernel_73)
    assert "Linux 7.3.4 has no function do_unlinkat" in info.value.message
    assert "it is filename_unlinkat from 7.0 on" in info.value.message
    assert (
        info.value.fix
        == 'attach to filename_unlinkat on 7.0 and later: SEC("kprobe/filename_unlinkat")'
    )


def test_kbuild_error_of_the_kfunc_api_is_explained(seed: Path, kernel_61: Kernel) -> None:
    """Real kbuild of the seed's hello.c for 6.1: gcc's error, then what it means."""
    with pytest.raises(BuildError) as info:
        build_module(ModuleSource.find(seed), kernel_61)
    message = info.value.message
    assert message.startswith(f"{seed}/hello.c:8: error:"), message
    assert "module hello uses the kfunc API of Linux 6.9" in message
    assert "Linux 6.1.192's headers define none of these" in message
    assert f"kfunc compat -o {seed}/compat.h" in (info.value.fix or "")


@pytest.mark.parametrize("series", ["6.1", "6.12", "7.3"])
def test_compat_header_builds_the_seed(seed: Path, series: str, request) -> None:
    """`kfunc compat -o compat.h` and one #include: the seed's module builds with BTF."""
    fixture = {"6.1": "kernel_61", "6.12": "kernel_612", "7.3": "kernel_73"}[series]
    kernel = request.getfixturevalue(fixture)
    out = kfunc("compat", "-o", str(seed / "compat.h"))
    assert out.returncode == 0, out.stderr
    hello = seed / "hello.c"
    text = hello.read_text()
    hello.write_text(
        text.replace(
            "#include <linux/btf_ids.h>\n", '#include <linux/btf_ids.h>\n#include "compat.h"\n'
        )
    )
    built = build_module(ModuleSource.find(seed), kernel)
    assert [(k.name, k.set_name) for k in built.kfuncs] == [
        ("bpf_kfunc_call_test", "bpf_kfunc_example_ids_set")
    ]


def test_compat_for_a_kernel_holds_only_what_it_lacks(kernel_612: Kernel) -> None:
    everything, for_612 = kfunc("compat"), kfunc("compat", "--kernel", "6.12")
    for name in ("__bpf_kfunc", "__bpf_kfunc_start_defs", "__bpf_hook_start", "BTF_KFUNCS_START",
                 "BTF_SET8_KFUNCS"):  # fmt: skip
        assert f"#ifndef {name}\t" in everything.stdout
        assert f"#ifndef {name}\t" not in for_612.stdout
    assert "#ifndef KF_FASTCALL" in for_612.stdout  # 6.13


def _spec_project(tmp_path: Path, kfunc_name: str) -> Path:
    project = tmp_path / "clash"
    shutil.copytree(ROOT / "examples" / "hello_fentry", project)
    for f in project.iterdir():
        if f.is_file():
            f.write_text(f.read_text().replace("bpf_kfunc_call_test", kfunc_name))
    return project


def test_spec_kfunc_named_like_a_vmlinux_kfunc(tmp_path: Path, kernel_612: Kernel) -> None:
    project = _spec_project(tmp_path, "bpf_task_acquire")
    with pytest.raises(CheckError) as info:
        build_project(Project.load(project), kernel_612)
    assert (
        "module hello_fentry's kfunc bpf_task_acquire is already a kfunc of vmlinux on Linux "
        "6.12.117" in info.value.message
    )
    assert "is already present in vmlinux" in info.value.message
    assert info.value.fix and "rename the kfunc" in info.value.fix


def test_kfunc_named_like_a_kfunc_of_an_image_module(kernel_612: Kernel) -> None:
    """Debian's 6.12 ships nf_conntrack as a module, with its conntrack kfuncs."""
    from kfunc.name_clash import name_clashes

    (problem,) = name_clashes("mine", ["bpf_ct_insert_entry", "mine_own_kfunc"], kernel_612)
    assert problem.message.startswith(
        "module mine's kfunc bpf_ct_insert_entry is already a kfunc of module nf_conntrack"
    )


def test_hand_written_kfunc_named_like_a_vmlinux_function(seed: Path, kernel_612: Kernel) -> None:
    for f in (seed / "hello.c", seed / "kfunc.bpf.c"):
        f.write_text(f.read_text().replace("bpf_kfunc_call_test", "vfs_unlink"))
    with pytest.raises(CheckError) as info:
        build_project(Project.load(seed), kernel_612)
    assert "module hello's kfunc vfs_unlink is already a function of vmlinux" in info.value.message
    assert "libbpf binds a program's extern vfs_unlink to vmlinux's" in info.value.message


def test_attach_targets_the_kernel_lacks(seed: Path, kernel_612: Kernel) -> None:
    bpf = seed / "kfunc.bpf.c"
    bpf.write_text(
        bpf.read_text()
        + '\nSEC("tracepoint/sched/no_such_event")\nint on_event(void *ctx) { return 0; }\n'
        + '\nSEC("tracepoint/syscalls/sys_enter_unlinkat")\nint on_sys(void *ctx) { return 0; }\n'
        + '\nSEC("kprobe/filename_unlinkat")\nint on_new(void *ctx) { return 0; }\n'
    )
    with pytest.raises(CheckError) as info:
        build_project(Project.load(seed), kernel_612)
    problems = info.value.problems
    assert len(problems) == 2, problems
    assert "prog 'on_event' (tracepoint/sched/no_such_event) attaches to event" in problems[0]
    assert "before 7.0 it is do_unlinkat" in problems[1]


def test_kfunc_test_without_test_files_runs_the_scenario(seed: Path, kernel_61: Kernel,
                                                         kernel_73: Kernel) -> None:  # fmt: skip
    """Both kernels refuse the seed before a boot: the table says why, nothing boots."""
    before = qemu_processes()
    out = kfunc("test", str(seed), "--kernels", "6.1,7.3")
    assert out.returncode == 1, out.stdout + out.stderr
    rows = {line.split()[1]: line for line in out.stdout.splitlines() if line.startswith("│")}
    assert "refused before boot: prog 'handle_kprobe'" in rows["6.1"]
    assert "refused before boot: prog 'handle_kprobe'" in rows["7.3"]
    assert "filename_unlinkat" in out.stdout
    assert qemu_processes() == before


@pytest.mark.vm
def test_seed_runs_on_612_and_is_refused_elsewhere(tmp_path: Path) -> None:
    """One boot (6.12): the seed prints Result: 10; a copy that prints twice shows both
    lines; 6.1 and 7.3 are refused before booting, with their reasons."""
    require(os.geteuid() == 0, "booting kernels needs root here")
    seed = write_seed(tmp_path / "seed")
    twice = write_seed(tmp_path / "twice")
    bpf = twice / "kfunc.bpf.c"
    bpf.write_text(
        bpf.read_text().replace(
            "    return 0;\n}",
            '    bpf_printk("second line: %lld\\n", result + 1);\n    return 0;\n}',
        )
    )
    out = kfunc("run", str(seed), str(twice), "--kernel", "6.1,6.12,7.3", "--json", "--boot",
                "--verbose", timeout=900)  # fmt: skip
    data = json.loads(out.stdout)
    by_kernel = {k["kernel"]: k for k in data["kernels"]}
    assert by_kernel["6.1"]["refused"] and "only from Linux 6.10 on" in by_kernel["6.1"]["error"]
    assert by_kernel["7.3"]["refused"] and "filename_unlinkat" in by_kernel["7.3"]["fix"]
    k612 = by_kernel["6.12"]
    assert k612["ok"], json.dumps(k612, indent=2)
    seed_report, twice_report = k612["report"]["projects"]
    assert "BPF triggered do_unlinkat from PID" in seed_report["result"]
    assert seed_report["result"].rstrip().endswith("Result: 10")
    assert any("Hello, world!" in line for line in seed_report["kernel_log"])
    trace = twice_report["trace"]
    assert any(line.endswith("Result: 10") for line in trace), trace
    assert any("second line: 11" in line for line in trace), trace
    assert all(line.strip() for line in trace), trace  # no empty line of a format's "\n"
    assert k612["summary"].startswith("seed: BPF triggered do_unlinkat from PID")
    assert "; twice: BPF triggered do_unlinkat" in k612["summary"]
    assert out.returncode == 1  # 6.1 and 7.3 refused
