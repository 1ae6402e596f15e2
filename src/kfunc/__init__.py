"""kfunc: author, build, load and test eBPF kfuncs defined in kernel modules."""

__version__ = "0.1.0"
