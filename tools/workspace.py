"""Path safety: every file tool resolves paths through here, so nothing outside the workspace
is read or written, whether by `..`, an absolute path elsewhere, or a symlink that escapes."""

from __future__ import annotations

from pathlib import Path

from tools.base import ToolError


def resolve_in_workspace(root: Path, path: str, *, must_exist: bool = False) -> Path:
    """Resolve `path` (absolute, or relative to `root`) and refuse anything outside `root`.

    Symlinks are resolved before the check, so a link pointing out of the tree is refused too.
    """
    if not path or not path.strip():
        raise ToolError("The path is empty. Give a path relative to the repository root.")
    if "\x00" in path:
        raise ToolError("The path contains a NUL byte.")
    root = root.resolve()
    raw = Path(path.strip())
    candidate = raw if raw.is_absolute() else root / raw
    resolved = candidate.resolve(strict=False)
    if resolved != root and root not in resolved.parents:
        raise ToolError(
            f"The path {path!r} is outside the workspace ({root}). "
            "Only files inside the repository can be used; give a path relative to its root."
        )
    if must_exist and not resolved.exists():
        raise ToolError(f"The path {display(root, resolved)} does not exist.")
    return resolved


def display(root: Path, path: Path) -> str:
    """How a path is shown to the model: relative to the workspace root."""
    try:
        rel = path.resolve().relative_to(root.resolve())
    except ValueError:
        return str(path)
    return str(rel) if str(rel) != "." else "."
