"""Definitions and references in source files (tree-sitter tags), and syntax errors.

``extract_tags`` parses a file once and runs ONE compiled query per language; every pattern of that
query captures ``@name`` (the identifier), definitions also ``@def`` (the whole definition, used for
the signature) and optionally ``@body`` (where the header ends, when it is not the node's ``body``
field). What a pattern means (def or ref, and its category) is known from the pattern's index, so
there is no capture-name parsing per match. When several patterns match the same name node, the
one listed LAST wins (specific patterns, like "a function inside a class body is a method", come
after the generic ones).

Written for the pinned grammar wheels (python 0.25, javascript 0.25, typescript/tsx 0.23,
go 0.25, rust 0.24, java 0.23) and py-tree-sitter 0.25+ (``QueryCursor(query).matches(node)``).
"""

from __future__ import annotations

import functools
import re
import threading
from dataclasses import dataclass
from typing import Literal

import tree_sitter

from tools.code.languages import get_language, get_parser

MAX_SIGNATURE = 200
_MAX_HEADER_BYTES = 1200  # a header longer than this is cut before decoding (its text is cut anyway)


@dataclass(frozen=True, slots=True)
class Tag:
    name: str
    kind: Literal["def", "ref"]
    line: int  # 1-based
    category: str
    signature: str


@dataclass(frozen=True)
class SyntaxIssue:
    line: int  # 1-based
    column: int  # 1-based, in characters
    message: str


# --------------------------------------------------------------------------- queries
#
# Each entry: (kind, category, pattern). A pattern must be exactly one query pattern.

_UPPER = '"^_*[A-Z][A-Z0-9_]*$"'

_PYTHON = [
    # definitions
    ("def", "function", "(function_definition name: (identifier) @name) @def"),
    ("def", "class", "(class_definition name: (identifier) @name) @def"),
    (
        "def",
        "constant",
        f"(module (expression_statement (assignment left: (identifier) @name (#match? @name {_UPPER})) @def))",
    ),
    ("def", "method", "(class_definition body: (block (function_definition name: (identifier) @name) @def))"),
    (
        "def",
        "method",
        "(class_definition body: (block (decorated_definition"
        " definition: (function_definition name: (identifier) @name) @def)))",
    ),
    # references: calls
    ("ref", "call", "(call function: (identifier) @name)"),
    ("ref", "call", "(call function: (attribute attribute: (identifier) @name))"),
    # references: base classes, metaclass
    ("ref", "type", "(class_definition superclasses: (argument_list (identifier) @name))"),
    (
        "ref",
        "type",
        "(class_definition superclasses: (argument_list (attribute attribute: (identifier) @name)))",
    ),
    (
        "ref",
        "type",
        "(class_definition superclasses: (argument_list (keyword_argument value: (identifier) @name)))",
    ),
    # references: decorators (decorator calls are calls, above)
    ("ref", "name", "(decorator (identifier) @name)"),
    ("ref", "name", "(decorator (attribute attribute: (identifier) @name))"),
    # references: type annotations
    ("ref", "type", "(type (identifier) @name)"),
    ("ref", "type", "(type (attribute attribute: (identifier) @name))"),
    ("ref", "type", "(generic_type (identifier) @name)"),
    ("ref", "type", "(type (binary_operator (identifier) @name))"),
    ("ref", "type", "(type (binary_operator (binary_operator (identifier) @name)))"),
    ("ref", "type", "(type (binary_operator (attribute attribute: (identifier) @name)))"),
]

_FUNC_VALUE = "[(arrow_function body: (_) @body) (function_expression body: (_) @body)]"

# JavaScript patterns shared with TypeScript; {cls} is the node type of a class name.
_JS_COMMON = [
    # definitions
    ("def", "function", "(function_declaration name: (identifier) @name) @def"),
    ("def", "function", "(generator_function_declaration name: (identifier) @name) @def"),
    ("def", "class", "(class_declaration name: ({cls}) @name) @def"),
    (
        "def",
        "constant",
        f"(program (lexical_declaration (variable_declarator name: (identifier) @name"
        f" (#match? @name {_UPPER}))) @def)",
    ),
    (
        "def",
        "constant",
        f"(program (export_statement declaration: (lexical_declaration (variable_declarator"
        f" name: (identifier) @name (#match? @name {_UPPER}))) @def))",
    ),
    (
        "def",
        "method",
        "(method_definition name: [(property_identifier) (private_property_identifier)] @name) @def",
    ),
    (
        "def",
        "function",
        f"(lexical_declaration (variable_declarator name: (identifier) @name value: {_FUNC_VALUE})) @def",
    ),
    (
        "def",
        "function",
        f"(variable_declaration (variable_declarator name: (identifier) @name value: {_FUNC_VALUE})) @def",
    ),
    (
        "def",
        "function",
        "(assignment_expression left: (member_expression property: (property_identifier) @name)"
        f" right: {_FUNC_VALUE}) @def",
    ),
    # references
    ("ref", "call", "(call_expression function: (identifier) @name)"),
    ("ref", "call", "(call_expression function: (member_expression property: (property_identifier) @name))"),
    ("ref", "type", "(new_expression constructor: (identifier) @name)"),
    (
        "ref",
        "type",
        "(new_expression constructor: (member_expression property: (property_identifier) @name))",
    ),
]

# JSX components (capitalised names; lower-case ones are HTML tags): javascript and tsx only.
_JSX = [
    ("ref", "call", '(jsx_opening_element name: (identifier) @name (#match? @name "^[A-Z]"))'),
    ("ref", "call", '(jsx_self_closing_element name: (identifier) @name (#match? @name "^[A-Z]"))'),
]

_JAVASCRIPT = [
    *((k, c, p.replace("{cls}", "identifier")) for k, c, p in _JS_COMMON),
    ("def", "method", f"(field_definition property: (property_identifier) @name value: {_FUNC_VALUE}) @def"),
    ("ref", "type", "(class_heritage (identifier) @name)"),
    ("ref", "type", "(class_heritage (member_expression property: (property_identifier) @name))"),
    *_JSX,
]

_TYPESCRIPT = [
    *((k, c, p.replace("{cls}", "type_identifier")) for k, c, p in _JS_COMMON),
    ("def", "class", "(abstract_class_declaration name: (type_identifier) @name) @def"),
    ("def", "interface", "(interface_declaration name: (type_identifier) @name) @def"),
    ("def", "type", "(type_alias_declaration name: (type_identifier) @name) @def"),
    ("def", "enum", "(enum_declaration name: (identifier) @name) @def"),
    ("def", "module", "(internal_module name: (identifier) @name) @def"),
    ("def", "function", "(function_signature name: (identifier) @name) @def"),
    ("def", "method", "(abstract_method_signature name: (property_identifier) @name) @def"),
    ("def", "method", "(method_signature name: (property_identifier) @name) @def"),
    ("def", "field", "(interface_body (property_signature name: (property_identifier) @name) @def)"),
    (
        "def",
        "method",
        f"(public_field_definition name: (property_identifier) @name value: {_FUNC_VALUE}) @def",
    ),
    ("ref", "type", "(extends_clause value: (identifier) @name)"),
    ("ref", "type", "(extends_clause value: (member_expression property: (property_identifier) @name))"),
    ("ref", "type", "(type_identifier) @name"),
]

_GO = [
    ("def", "function", "(function_declaration name: (identifier) @name) @def"),
    ("def", "method", "(method_declaration name: (field_identifier) @name) @def"),
    ("def", "type", "(type_spec name: (type_identifier) @name) @def"),
    ("def", "type", "(type_alias name: (type_identifier) @name) @def"),
    (
        "def",
        "struct",
        "(type_spec name: (type_identifier) @name type: (struct_type (field_declaration_list) @body)) @def",
    ),
    ("def", "interface", '(type_spec name: (type_identifier) @name type: (interface_type "{" @body)) @def'),
    ("def", "method", "(method_elem name: (field_identifier) @name) @def"),
    ("def", "constant", "(source_file (const_declaration (const_spec name: (identifier) @name) @def))"),
    ("ref", "call", "(call_expression function: (identifier) @name)"),
    ("ref", "call", "(call_expression function: (selector_expression field: (field_identifier) @name))"),
    ("ref", "type", "(type_identifier) @name"),
]

_RUST = [
    ("def", "function", "(function_item name: (identifier) @name) @def"),
    ("def", "function", "(function_signature_item name: (identifier) @name) @def"),
    ("def", "struct", "(struct_item name: (type_identifier) @name) @def"),
    ("def", "struct", "(union_item name: (type_identifier) @name) @def"),
    ("def", "enum", "(enum_item name: (type_identifier) @name) @def"),
    ("def", "trait", "(trait_item name: (type_identifier) @name) @def"),
    ("def", "module", "(mod_item name: (identifier) @name) @def"),
    ("def", "constant", "(const_item name: (identifier) @name) @def"),
    ("def", "constant", "(static_item name: (identifier) @name) @def"),
    ("def", "type", "(type_item name: (type_identifier) @name) @def"),
    ("def", "macro", "(macro_definition name: (identifier) @name . (macro_rule)? @body) @def"),
    ("def", "method", "(impl_item body: (declaration_list (function_item name: (identifier) @name) @def))"),
    ("def", "method", "(trait_item body: (declaration_list (function_item name: (identifier) @name) @def))"),
    (
        "def",
        "method",
        "(trait_item body: (declaration_list (function_signature_item name: (identifier) @name) @def))",
    ),
    ("ref", "call", "(call_expression function: (identifier) @name)"),
    ("ref", "call", "(call_expression function: (field_expression field: (field_identifier) @name))"),
    ("ref", "call", "(call_expression function: (scoped_identifier name: (identifier) @name))"),
    ("ref", "type", "(call_expression function: (scoped_identifier path: (identifier) @name))"),
    ("ref", "call", "(call_expression function: (generic_function function: (identifier) @name))"),
    (
        "ref",
        "call",
        "(call_expression function: (generic_function function: (field_expression field: (field_identifier) @name)))",
    ),
    (
        "ref",
        "call",
        "(call_expression function: (generic_function function: (scoped_identifier name: (identifier) @name)))",
    ),
    ("ref", "call", "(macro_invocation macro: (identifier) @name)"),
    ("ref", "type", "(type_identifier) @name"),
]

_JAVA = [
    ("def", "class", "(class_declaration name: (identifier) @name) @def"),
    ("def", "interface", "(interface_declaration name: (identifier) @name) @def"),
    ("def", "interface", "(annotation_type_declaration name: (identifier) @name) @def"),
    ("def", "enum", "(enum_declaration name: (identifier) @name) @def"),
    ("def", "record", "(record_declaration name: (identifier) @name) @def"),
    ("def", "method", "(method_declaration name: (identifier) @name) @def"),
    ("def", "constructor", "(constructor_declaration name: (identifier) @name) @def"),
    ("def", "constructor", "(compact_constructor_declaration name: (identifier) @name) @def"),
    (
        "def",
        "constant",
        f"(field_declaration declarator: (variable_declarator name: (identifier) @name"
        f" (#match? @name {_UPPER}))) @def",
    ),
    (
        "def",
        "constant",
        f"(constant_declaration declarator: (variable_declarator name: (identifier) @name"
        f" (#match? @name {_UPPER}))) @def",
    ),
    ("ref", "call", "(method_invocation name: (identifier) @name)"),
    ("ref", "name", "(marker_annotation name: (identifier) @name)"),
    ("ref", "name", "(annotation name: (identifier) @name)"),
    ("ref", "type", "(type_identifier) @name"),
]

PATTERNS: dict[str, list[tuple[str, str, str]]] = {
    "python": _PYTHON,
    "javascript": _JAVASCRIPT,
    "typescript": _TYPESCRIPT,
    "tsx": [*_TYPESCRIPT, *_JSX],
    "go": _GO,
    "rust": _RUST,
    "java": _JAVA,
}

# Extra text put before a definition's header, by (language, node type).
_PREFIX = {("go", "type_spec"): "type ", ("go", "type_alias"): "type ", ("go", "const_spec"): "const "}
_STRIP_ANNOTATIONS = frozenset({"java", "javascript", "typescript", "tsx"})
_ANNOTATIONS = re.compile(r"^(?:@(?!interface\b)[\w.]+(?:\([^()]*\))?\s+)+")
_OPEN_SPACE = re.compile(r"([(\[{]) ")
_SPACE_CLOSE = re.compile(r" ([)\]}])")


class _Compiled:
    __slots__ = ("query", "meta")

    def __init__(self, query: tree_sitter.Query, meta: list[tuple[bool, str]]):
        self.query = query
        self.meta = meta  # pattern index -> (is_def, category)


_compile_lock = threading.Lock()


@functools.cache
def _compile_unlocked(lang: str) -> _Compiled:
    entries = PATTERNS.get(lang)
    if entries is None:
        raise ValueError(f"no tags query for language {lang!r}")
    query = tree_sitter.Query(get_language(lang), "\n".join(p for _, _, p in entries))
    if query.pattern_count != len(entries):  # pragma: no cover - a query-authoring mistake
        raise RuntimeError(f"{lang}: {query.pattern_count} query patterns for {len(entries)} entries")
    return _Compiled(query, [(kind == "def", category) for kind, category, _ in entries])


def compiled_query(lang: str) -> tree_sitter.Query:
    """The tags query for `lang`, compiled once (raises if a node type does not exist)."""
    return _compile(lang).query


def _compile(lang: str) -> _Compiled:
    with _compile_lock:
        return _compile_unlocked(lang)


# --------------------------------------------------------------------------- tags


def _cut(text: str) -> str:
    return text if len(text) <= MAX_SIGNATURE else text[: MAX_SIGNATURE - 3].rstrip() + "..."


def _signature(source: bytes, node: tree_sitter.Node, body: tree_sitter.Node | None, lang: str) -> str:
    start = node.start_byte
    if body is None:
        body = node.child_by_field_name("body")
    if body is None:
        end = node.end_byte
    else:
        prev = body.prev_sibling
        while prev is not None and prev.is_extra:  # comments between the header and the body
            prev = prev.prev_sibling
        end = body.start_byte if prev is None or prev.end_byte <= start else prev.end_byte
    raw = source[start : min(end, start + _MAX_HEADER_BYTES)]
    text = " ".join(raw.decode("utf-8", "replace").split())
    if b"\n" in raw:
        text = _SPACE_CLOSE.sub(r"\1", _OPEN_SPACE.sub(r"\1", text))
    if lang in _STRIP_ANNOTATIONS and text.startswith("@"):
        text = _ANNOTATIONS.sub("", text)
    prefix = _PREFIX.get((lang, node.type)) if lang == "go" else None
    if prefix:
        text = prefix + text
    return _cut(text)


def extract_tags(source: bytes, lang: str) -> list[Tag]:
    """Definitions and references in `source` (a file of language `lang`), in source order.

    A definition's signature is its header on one line; a reference's is its stripped source line.
    The identifier at a definition site is never reported as a reference.
    """
    compiled = _compile(lang)
    tree = get_parser(lang).parse(source)
    meta = compiled.meta
    # name node start byte -> (pattern index, name node, def node, body node)
    defs: dict[int, tuple[int, tree_sitter.Node, tree_sitter.Node, tree_sitter.Node | None]] = {}
    refs: dict[int, tuple[str, tree_sitter.Node]] = {}
    for index, caps in tree_sitter.QueryCursor(compiled.query).matches(tree.root_node):
        name = caps["name"][0]
        is_def, category = meta[index]
        key = name.start_byte
        if is_def:
            previous = defs.get(key)
            if previous is None or previous[0] < index:
                body = caps.get("body")
                defs[key] = (index, name, caps["def"][0], body[0] if body else None)
        elif key not in refs:
            refs[key] = (category, name)

    found: list[tuple[int, Tag]] = []
    for key, (index, name, node, body) in defs.items():
        found.append(
            (
                key,
                Tag(
                    name.text.decode("utf-8", "replace"),
                    "def",
                    name.start_point[0] + 1,
                    meta[index][1],
                    _signature(source, node, body, lang),
                ),
            )
        )
    if refs:
        lines = source.split(b"\n")
        line_text: dict[int, str] = {}
        for key, (category, name) in refs.items():
            if key in defs:
                continue
            row = name.start_point[0]
            text = line_text.get(row)
            if text is None:
                text = line_text[row] = _cut(lines[row].decode("utf-8", "replace").strip())
            found.append((key, Tag(name.text.decode("utf-8", "replace"), "ref", row + 1, category, text)))
    found.sort(key=lambda item: item[0])
    return [tag for _, tag in found]


# --------------------------------------------------------------------------- syntax errors


def syntax_issues(source: bytes, lang: str, limit: int = 20) -> list[SyntaxIssue]:
    """ERROR and MISSING nodes of the parse tree, in source order, at most one per line, at most `limit`."""
    root = get_parser(lang).parse(source).root_node
    if not root.has_error:
        return []
    issues: list[SyntaxIssue] = []
    seen_lines: set[int] = set()
    stack = [root]  # depth-first, in source order, only into subtrees that contain errors
    while stack and len(issues) < limit:
        node = stack.pop()
        if node.is_missing or node.is_error:
            row = node.start_point[0]
            if row not in seen_lines:
                seen_lines.add(row)
                issues.append(_issue(source, node))
        stack.extend(child for child in reversed(node.children) if child.has_error or child.is_missing)
    issues.sort(key=lambda issue: (issue.line, issue.column))
    return issues


def _issue(source: bytes, node: tree_sitter.Node) -> SyntaxIssue:
    row = node.start_point[0]
    start = node.start_byte
    line_start = source.rfind(b"\n", 0, start) + 1
    column = len(source[line_start:start].decode("utf-8", "replace")) + 1
    if node.is_missing:
        return SyntaxIssue(row + 1, column, f"missing `{node.type}`")
    end = node.end_byte if node.end_byte > start else start + 40
    snippet = source[start : min(end, start + 200)].split(b"\n", 1)[0].decode("utf-8", "replace").strip()
    if not snippet:
        return SyntaxIssue(row + 1, column, "syntax error")
    if len(snippet) > 20:
        snippet = snippet[:20] + "..."
    last_row = node.end_point[0] - (1 if node.end_point[1] == 0 else 0)
    span = f" (lines {row + 1}-{last_row + 1})" if last_row > row else ""
    return SyntaxIssue(row + 1, column, f"syntax error near `{snippet}`{span}")
