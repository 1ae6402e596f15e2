"""The kernel's kfunc API, release by release: what kfunc knows of it, stated once.

Each module holds one part of the API, and each fact carries the release that
brought it and the upstream commit (see :class:`~kfunc.kernel_api.change.Change`):

- :mod:`~kfunc.kernel_api.version`: kernel versions, ordered.
- :mod:`~kfunc.kernel_api.hooks`: which program types may call kfuncs (the
  kfunc hooks a set is registered for), and what module kfuncs need.
- :mod:`~kfunc.kernel_api.flags`: the KF_* flags of ``BTF_ID_FLAGS()`` and the
  set8 flag of ``BTF_KFUNCS_START``.
- :mod:`~kfunc.kernel_api.macros`: the macros a kfunc module is written with
  (``__bpf_kfunc``, ``__bpf_kfunc_start_defs``, ``BTF_KFUNCS_START`` ...).
- :mod:`~kfunc.kernel_api.btf_tags`: the ``bpf_kfunc`` decl tag and the type
  tag of a referenced kptr.
- :mod:`~kfunc.kernel_api.renames`: functions programs attach to that upstream
  renamed.

Where kfunc found no commit for a fact, its :class:`Change` has no hash and
its title says where the fact was read (a Debian kernel's headers or source).

This package only states facts and the rules that follow from them: it reads
no kernel. What a given target has (its hook enum, its headers' macros, its
BTF's functions) is read by :mod:`kfunc.kernels.facts`; the version shims
(:mod:`kfunc.codegen.shims`), the checks, the probe and ``kfunc compat`` read
the API from here. It imports nothing of kfunc outside itself, so every layer
may use it.
"""
