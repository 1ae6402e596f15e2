"""xdp_len's kfunc decides an XDP verdict: tested from Python in real kernels.

kfunc test examples/xdp --kernels 6.1,6.12
"""

XDP_DROP, XDP_PASS = 1, 2


def frame(length: int) -> bytes:
    """An Ethernet frame of ``length`` bytes: zero MACs, IPv4, zero payload."""
    return (bytes(12) + b"\x08\x00" + bytes(length))[:length]


def test_verdict_by_length(bpf):
    verdict = bpf.load().programs["verdict"]
    assert verdict.type_name == "xdp"
    for length, expected in [(64, XDP_PASS), (60, XDP_PASS), (59, XDP_DROP), (40, XDP_DROP)]:
        result = verdict.test_run(frame(length))
        assert result.retval == expected, f"{length}-byte frame"
        assert result.data_out == frame(length)  # the program leaves the frame as it was
