"""The kernel's kfunc API, release by release: what kfunc knows of it, stated once.

- :mod:`~kfunc.kernel_api.version`: kernel versions, ordered.
- :mod:`~kfunc.kernel_api.hooks`: which program types may call kfuncs (the
  kfunc hooks a set is registered for), and what module kfuncs need.
- :mod:`~kfunc.kernel_api.flags`: the KF_* flags of ``BTF_ID_FLAGS()`` and the
  set8 flag of ``BTF_KFUNCS_START``.

This package states facts and the rules that follow from them; it reads no
kernel (:mod:`kfunc.kernels.facts` reads what a target has) and imports
nothing of kfunc outside itself, so every layer may use it.
"""
