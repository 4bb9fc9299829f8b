"""Which tree-sitter grammar parses which file, and cached Language / Parser objects.

Languages are loaded lazily from the individual grammar wheels (tree-sitter-python, -javascript,
-typescript, -go, -rust, -java). ``get_language`` caches one Language per name for the process;
``get_parser`` caches one Parser per name *per thread*, because Parser objects are not thread-safe.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from pathlib import Path

import tree_sitter

EXTENSIONS: dict[str, str] = {
    ".py": "python",
    ".pyi": "python",
    ".js": "javascript",
    ".jsx": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".ts": "typescript",
    ".mts": "typescript",
    ".cts": "typescript",
    ".tsx": "tsx",
    ".go": "go",
    ".rs": "rust",
    ".java": "java",
}

LANGUAGES: tuple[str, ...] = ("python", "javascript", "typescript", "tsx", "go", "rust", "java")


def language_for(path: str | Path) -> str | None:
    """The language name for a file path (by its extension, case-insensitive), or None."""
    suffix = Path(path).suffix.lower()
    return EXTENSIONS.get(suffix) if suffix else None


def _loader(lang: str) -> Callable[[], object]:
    if lang == "python":
        import tree_sitter_python as mod

        return mod.language
    if lang == "javascript":
        import tree_sitter_javascript as mod

        return mod.language
    if lang in ("typescript", "tsx"):
        import tree_sitter_typescript as mod

        return mod.language_typescript if lang == "typescript" else mod.language_tsx
    if lang == "go":
        import tree_sitter_go as mod

        return mod.language
    if lang == "rust":
        import tree_sitter_rust as mod

        return mod.language
    if lang == "java":
        import tree_sitter_java as mod

        return mod.language
    raise ValueError(f"unsupported language: {lang!r} (supported: {', '.join(LANGUAGES)})")


_language_lock = threading.Lock()


@functools.cache
def _language(lang: str) -> tree_sitter.Language:
    return tree_sitter.Language(_loader(lang)())


def get_language(lang: str) -> tree_sitter.Language:
    """The tree-sitter Language for `lang` (one of LANGUAGES); cached. Raises ValueError if unknown."""
    with _language_lock:
        return _language(lang)


_local = threading.local()


def get_parser(lang: str) -> tree_sitter.Parser:
    """A Parser for `lang`, cached per thread (Parser objects must not be shared between threads)."""
    parsers: dict[str, tree_sitter.Parser] | None = getattr(_local, "parsers", None)
    if parsers is None:
        parsers = _local.parsers = {}
    parser = parsers.get(lang)
    if parser is None:
        parser = parsers[lang] = tree_sitter.Parser(get_language(lang))
    return parser
