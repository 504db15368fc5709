"""The project's own import-linter contract: a private name is imported only inside its own package.

import-linter sees modules, not names, and ruff's import-private-name (PLC2701) lets a package import
any private name from itself, so neither stops ``timebank.earning`` from importing
``timebank.web.resident._domain_message``. This contract does: a name starting with one underscore
(``_helper``, not ``__version__``) may be imported from a module only by modules inside the package
that holds that module, the same rule import-linter's ``private_modules`` contract applies to modules.

Configured in setup.cfg (``contract_types = private_names: tools.import_contracts.PrivateNamesContract``);
``lint-imports`` runs it from the repository root.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import grimp
from importlinter import Contract, ContractCheck, fields, output


class PrivateNamesContract(Contract):
    """Options: ``packages``, the packages whose modules are checked (the root packages if absent)."""

    type_name = "private_names"

    packages = fields.ListField(subfield=fields.StringField(), required=False)

    def check(self, graph: grimp.ImportGraph, verbose: bool) -> ContractCheck:
        roots = list(self.packages or self.session_options.get("root_packages") or [])
        files = _module_files(graph, roots)
        violations = []
        for importer, path in sorted(files.items()):
            for line, module, name in _private_name_imports(importer, path, files):
                owner = module if _is_package(files.get(module)) else module.rpartition(".")[0]
                if importer != owner and not importer.startswith(owner + "."):
                    violations.append({"importer": importer, "line": line, "module": module, "name": name})
        return ContractCheck(kept=not violations, metadata={"violations": violations})

    def render_broken_contract(self, check: ContractCheck) -> None:
        output.print_error("Private names imported from outside their package:", bold=False)
        output.new_line()
        for v in check.metadata["violations"]:
            output.print_error(f"- {v['importer']} (l.{v['line']}) imports {v['name']} from {v['module']}", bold=False)
        output.new_line()


def _module_files(graph: grimp.ImportGraph, roots: list[str]) -> dict[str, Path]:
    """The source file of every module of ``roots`` in the graph (found without importing them)."""
    files: dict[str, Path] = {}
    for root in roots:
        spec = importlib.util.find_spec(root)
        if spec is None or not spec.submodule_search_locations:
            continue
        base = Path(list(spec.submodule_search_locations)[0])
        for module in {root} | graph.find_descendants(root):
            parts = module.split(".")[1:]
            package = base.joinpath(*parts, "__init__.py")
            files[module] = package if package.exists() else base.joinpath(*parts).with_suffix(".py")
    return files


def _is_package(path: Path | None) -> bool:
    return path is not None and path.name == "__init__.py"


def _private_name_imports(importer: str, path: Path, files: dict[str, Path]):
    """(line, module, name) for every ``from module import _name`` in the importer's source."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = importer if _is_package(path) else importer.rpartition(".")[0]
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            module = f"{base}.{node.module}" if node.module else base
        else:
            module = node.module or ""
        if module not in files:
            continue  # another project's module: ruff's PLC2701 speaks for those
        for alias in node.names:
            if alias.name.startswith("_") and not alias.name.startswith("__"):
                yield node.lineno, module, alias.name
