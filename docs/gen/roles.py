"""A griffe extension: Sphinx roles in kfunc's docstrings become checked cross-references.

(And reST's ``text::`` before a literal block reads ``text:``, as in Sphinx.)

kfunc's docstrings cite each other as Sphinx does (``:func:`explain_log```,
``:class:`~kfunc.errors.KfuncError```). mkdocstrings writes cross-references
as Markdown (``[`explain_log`][kfunc.verifier.explain_log]``), so each role is
rewritten into one. A short name is resolved as Sphinx would: in the scope of
the docstring's object (its class, its module), else as the one object of
kfunc (or of the docstring's own package) whose path ends with it (a name
imported inside a function). ``~``
shows only the last component. Names outside kfunc (``struct.Struct``) stay
code, and so do targets the reference does not render (private or
undocumented), after they are found. A name that names nothing is a warning,
which ``mkdocs build --strict`` turns into a failed build: a docstring that
cites a renamed or removed object fails ``make docs``.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import griffe

# reST's literal-block marker: "text::" shows as "text:", a lone "::" not at
# all; the indented block after it is a code block in Markdown too.
_LITERAL = re.compile(r"(?m)(?:(?<=\S)(:):|^[ \t]*::)[ \t]*$")
_ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|exc|obj):`(~?)([\w.]+)`")
_log = logging.getLogger("mkdocs.plugins.kfunc.roles")


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx roles into mkdocstrings cross-references once the package is loaded."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        if pkg.name != "kfunc":
            return
        self._pkg = pkg
        self._objects: dict[str, griffe.Object] = {}
        self._index(pkg)
        for obj in list(self._objects.values()):
            if obj.docstring is not None:
                text = _LITERAL.sub(lambda m: m.group(1) or "", obj.docstring.value)
                obj.docstring.value = _ROLE.sub(lambda m, o=obj: self._ref(o, m), text)

    def _index(self, obj: griffe.Object) -> None:
        self._objects[obj.path] = obj
        for member in obj.members.values():
            if not member.is_alias:
                self._index(member)  # type: ignore[arg-type]

    def _resolve(self, obj: griffe.Object, name: str) -> str | None:
        """The full path ``name`` means in the docstring of ``obj``, or None."""
        if name == "kfunc" or name.startswith("kfunc."):
            return name
        if "." in name and self._imported_from_outside(obj, name):
            return name  # python-debian's debian.debian_support.Version, not kfunc.kernels.debian
        head, _, rest = name.partition(".")
        scope: griffe.Object | None = obj
        while scope is not None:
            try:
                path = scope.resolve(head)
            except griffe.NameResolutionError:
                scope = scope.parent
                continue
            return f"{path}.{rest}" if rest else path
        found = [path for path in self._objects if path.endswith(f".{name}")]
        if len(found) > 1:  # the one in the docstring's own package, if just one is
            module = obj if obj.is_module else obj.module
            package = module.path if module.is_init_module else module.path.rpartition(".")[0]
            found = [path for path in found if path.startswith(f"{package}.")]
        return found[0] if len(found) == 1 else None

    @staticmethod
    def _imported_from_outside(obj: griffe.Object, name: str) -> bool:
        """Whether ``name`` is a full path into a package that ``obj``'s module imports."""
        module = obj if obj.is_module else obj.module
        roots = {path.split(".")[0] for path in module.imports.values()} - {"kfunc"}
        return name.split(".")[0] in roots

    def _find(self, path: str) -> griffe.Object | None:
        """The object at ``path``, through re-exports (``kfunc.libbpf.BpfObject``)."""
        if path in self._objects:
            return self._objects[path]
        try:
            found = self._pkg[path.removeprefix("kfunc.")] if path != "kfunc" else self._pkg
            return found.final_target if found.is_alias else found  # type: ignore[no-any-return]
        except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
            return None

    def _ref(self, obj: griffe.Object, match: re.Match[str]) -> str:
        tilde, name = match.groups()
        text = name.rsplit(".", 1)[-1] if tilde else name
        path = self._resolve(obj, name)
        if path is not None and not path.startswith("kfunc"):
            return f"`{text}`"  # the standard library's: no inventory to link to
        target = self._find(path) if path else None
        if target is None:
            _log.warning("%s: its docstring cites %r, which names nothing there", obj.path, name)
            return f"`{text}`"
        path = target.path
        if any(part.startswith("_") and part != "__init__" for part in path.split(".")) or (
            target.docstring is None and not target.is_module
        ):
            return f"`{text}`"  # found, but the reference does not render it
        return f"[`{text}`][{path}]"
