"""The tutorial's kfunc from an fentry program, tested from Python in real kernels.

kfunc test examples/hello_fentry --kernels 6.1,6.12
"""

import re


def test_result_in_the_trace(bpf):
    obj = bpf.load()  # loaded and attached: fentry on do_unlinkat
    assert obj.programs["handle_fentry"].attached
    bpf.trace_clear()
    bpf.trigger()  # unlinks a file in the guest
    lines = bpf.trace(expect=r"Result: \d+", timeout=5)
    assert re.search(r"from PID \d+\. Result: 10$", lines[-1])
