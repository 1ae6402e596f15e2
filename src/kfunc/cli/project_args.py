"""The options the commands that take a project share."""

from __future__ import annotations

from typing import Any

__all__ = ["add_module_dir"]


def add_module_dir(p: Any) -> None:
    """--module DIR: where a project's hand-written module is."""
    p.add_argument(
        "--module", "-m", metavar="DIR",
        help="the hand-written module's directory (default: kfunc.toml's [module] path, else the "
        "one directory of the project with a Kbuild or Makefile that has obj-m)",
    )  # fmt: skip
