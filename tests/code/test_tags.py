"""Tags (definitions and references) and syntax issues for every supported language."""

from __future__ import annotations

import threading
import time

import pytest
import tree_sitter

from tools.code.languages import EXTENSIONS, get_language, get_parser, language_for
from tools.code.tags import PATTERNS, SyntaxIssue, Tag, compiled_query, extract_tags, syntax_issues

LANGS = ["python", "javascript", "typescript", "tsx", "go", "rust", "java"]

PY = '''\
"""Word statistics."""

from collections import Counter
from dataclasses import dataclass

DEFAULT_LIMIT = 3
_cache = {}


@dataclass(frozen=True)
class WordStats(Base):
    text: str

    @property
    def words(self) -> list[str]:
        return self.text.split()

    def top_words(self, n: int = DEFAULT_LIMIT) -> list[tuple[str, int]]:
        counts = Counter(self.words)
        return counts.most_common(n)


def top_words(text: str, n: int = 3) -> list[str]:
    def keep(word):
        return word.isalpha()

    stats = WordStats(text)
    return [w for w, _ in stats.top_words(n) if keep(w)]


async def load(path: Path | None, *, retries: int = 1) -> WordStats:
    data = await read_file(path)
    return WordStats(data)
'''

JS = """\
import { render } from "./dom.js";

export const MAX_ITEMS = 50;

export function createStore(reducer, initial) {
  let state = initial;
  return { dispatch: (action) => { state = reducer(state, action); } };
}

export class TodoList extends Component {
  constructor(props) {
    super(props);
    this.store = createStore(todos, []);
  }

  addItem(text) {
    this.store.dispatch({ type: "add", text });
    return new Item(text);
  }

  onClick = (event) => {
    this.addItem(event.target.value);
  };
}

const formatItem = (item) => `${item.text}`;

module.exports.helper = function (x) {
  return formatItem(x);
};

function App() {
  return <TodoList items={[]} />;
}
"""

TS = """\
import { Request } from "express";

export interface User {
  id: number;
  name: string;
  greet(other: User): string;
}

export type UserId = number | string;

export enum Role {
  Admin,
  Guest,
}

export abstract class Repository<T extends Entity> {
  abstract find(id: UserId): Promise<T | undefined>;
}

export class UserRepository extends Repository<User> implements Disposable {
  private cache = new Map<UserId, User>();

  async find(id: UserId): Promise<User | undefined> {
    return this.cache.get(id) ?? fetchUser(id);
  }
}

export const toId = (req: Request): UserId => parseId(req.params.id);

function fetchUser(id: UserId): Promise<User> {
  return new UserRepository().find(id) as Promise<User>;
}
"""

TSX = """\
import React from "react";

interface ButtonProps {
  label: string;
  onPress: () => void;
}

export const Button = ({ label, onPress }: ButtonProps) => {
  return <Touchable onClick={onPress}><span>{label}</span></Touchable>;
};

export function Toolbar(props: { items: ButtonProps[] }): JSX.Element {
  const rendered = props.items.map((item) => <Button {...item} />);
  return <div className="toolbar">{rendered}</div>;
}
"""

GO = """\
package server

import (
    "context"
    "fmt"
)

const DefaultPort = 8080

type Handler interface {
    Serve(ctx context.Context, req *Request) error
}

type Server struct {
    Addr    string
    handler Handler
}

type Option func(*Server)

func NewServer(addr string, opts ...Option) *Server {
    s := &Server{Addr: addr}
    for _, opt := range opts {
        opt(s)
    }
    return s
}

func (s *Server) Start(ctx context.Context) error {
    if err := s.handler.Serve(ctx, nil); err != nil {
        return fmt.Errorf("serve: %w", err)
    }
    return nil
}
"""

RS = """\
use std::collections::HashMap;

pub const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone)]
pub struct Ast {
    pub nodes: Vec<Node>,
}

pub enum Node {
    Leaf(String),
    Branch(Box<Node>, Box<Node>),
}

pub trait Visitor {
    fn visit(&mut self, node: &Node) -> bool;
}

impl Ast {
    pub fn new() -> Self {
        Ast { nodes: Vec::new() }
    }

    pub fn walk<V: Visitor>(&self, visitor: &mut V) {
        for node in &self.nodes {
            visitor.visit(node);
        }
    }
}

pub type Result<T> = std::result::Result<T, ParseError>;

pub fn parse(input: &str) -> Result<Ast> {
    let mut ast = Ast::new();
    let tokens = tokenize(input);
    println!("{}", tokens.len());
    Ok(ast)
}

mod tests {
    fn helper() {}
}

macro_rules! node {
    ($x:expr) => { Node::Leaf($x) };
}
"""

JAVA = """\
package com.example.shop;

import java.util.ArrayList;
import java.util.List;

@Entity
public class Cart extends BaseEntity implements Iterable<Item> {
    public static final int MAX_ITEMS = 100;
    private final List<Item> items = new ArrayList<>();

    public Cart(Customer owner) {
        super(owner.getId());
    }

    @Override
    public Iterator<Item> iterator() {
        return items.iterator();
    }

    public void add(Item item) throws CartFullException {
        if (items.size() >= MAX_ITEMS) {
            throw new CartFullException(MAX_ITEMS);
        }
        items.add(item);
    }

    interface Listener {
        void onAdd(Item item);
    }

    enum Status { OPEN, CLOSED }

    record Line(Item item, int quantity) {}
}
"""


# --------------------------------------------------------------------------- helpers


def tags_of(source: str, lang: str) -> list[Tag]:
    return extract_tags(source.encode(), lang)


def defs(tags: list[Tag]) -> list[tuple[str, str, int]]:
    return [(t.name, t.category, t.line) for t in tags if t.kind == "def"]


def sigs(tags: list[Tag]) -> dict[str, str]:
    return {t.name: t.signature for t in tags if t.kind == "def"}


def refs(tags: list[Tag]) -> set[tuple[str, str, int]]:
    return {(t.name, t.category, t.line) for t in tags if t.kind == "ref"}


def check_common(tags: list[Tag]) -> None:
    # source order
    assert [t.line for t in tags] == sorted(t.line for t in tags)
    # a definition's own name is never also reported as a reference at the same place
    def_sites = {(t.name, t.line) for t in tags if t.kind == "def"}
    for t in tags:
        if t.kind == "ref":
            assert t.signature and len(t.signature) <= 200
        else:
            assert t.signature and "\n" not in t.signature and len(t.signature) <= 200
    assert all(t.kind in ("def", "ref") for t in tags)
    assert def_sites  # every sample has definitions


# --------------------------------------------------------------------------- languages


def test_language_for() -> None:
    assert language_for("a/b/c.py") == "python"
    assert language_for("stubs/x.pyi") == "python"
    assert language_for("App.JSX") == "javascript"
    assert language_for("x.mjs") == language_for("x.cjs") == "javascript"
    assert language_for("x.ts") == language_for("x.mts") == language_for("x.cts") == "typescript"
    assert language_for("x.tsx") == "tsx"
    assert language_for("main.go") == "go"
    assert language_for("lib.rs") == "rust"
    assert language_for("A.java") == "java"
    assert language_for("README.md") is None
    assert language_for("Makefile") is None
    assert set(EXTENSIONS.values()) == set(LANGS)


def test_language_and_parser_cache() -> None:
    assert get_language("python") is get_language("python")
    assert get_parser("go") is get_parser("go")
    other: list[tree_sitter.Parser] = []
    thread = threading.Thread(target=lambda: other.append(get_parser("go")))
    thread.start()
    thread.join()
    assert other[0] is not get_parser("go")  # one parser per thread
    with pytest.raises(ValueError):
        get_language("cobol")


@pytest.mark.parametrize("lang", LANGS)
def test_all_queries_compile(lang: str) -> None:
    query = compiled_query(lang)
    assert query.pattern_count == len(PATTERNS[lang])
    assert compiled_query(lang) is query  # compiled once


# --------------------------------------------------------------------------- python


def test_python_tags() -> None:
    tags = tags_of(PY, "python")
    check_common(tags)
    assert defs(tags) == [
        ("DEFAULT_LIMIT", "constant", 6),
        ("WordStats", "class", 11),
        ("words", "method", 15),
        ("top_words", "method", 18),
        ("top_words", "function", 23),
        ("keep", "function", 24),
        ("load", "function", 31),
    ]
    by_line = {(t.name, t.line): t.signature for t in tags if t.kind == "def"}
    assert by_line[("DEFAULT_LIMIT", 6)] == "DEFAULT_LIMIT = 3"
    assert by_line[("WordStats", 11)] == "class WordStats(Base):"
    assert by_line[("words", 15)] == "def words(self) -> list[str]:"
    assert (
        by_line[("top_words", 18)] == "def top_words(self, n: int = DEFAULT_LIMIT) -> list[tuple[str, int]]:"
    )
    assert by_line[("top_words", 23)] == "def top_words(text: str, n: int = 3) -> list[str]:"
    assert by_line[("load", 31)] == "async def load(path: Path | None, *, retries: int = 1) -> WordStats:"
    r = refs(tags)
    assert {
        ("dataclass", "call", 10),  # decorator call
        ("Base", "type", 11),  # base class
        ("property", "name", 14),  # bare decorator
        ("list", "type", 15),
        ("split", "call", 16),  # attribute call
        ("Counter", "call", 19),
        ("most_common", "call", 20),
        ("WordStats", "call", 27),
        ("top_words", "call", 28),
        ("keep", "call", 28),
        ("Path", "type", 31),  # inside a union annotation
        ("WordStats", "type", 31),  # return annotation
        ("read_file", "call", 32),
    } <= r
    # plain names are not references; lower-case module assignments are not definitions
    names = {t.name for t in tags}
    assert not {"counts", "stats", "data", "_cache", "self", "text", "w"} & {
        t.name for t in tags if t.kind == "ref"
    }
    assert "_cache" not in names
    ref = next(t for t in tags if t.kind == "ref" and t.name == "most_common")
    assert ref.signature == "return counts.most_common(n)"


def test_python_signature_multiline_and_comment() -> None:
    source = (
        "class A:\n"
        "    @staticmethod\n"
        "    def build(\n"
        "        first: int,\n"
        "        second: str = 'x',\n"
        "    ) -> 'A':  # a comment\n"
        "        return A()\n"
        "\n"
        "    class Inner:\n"
        "        pass\n"
    )
    tags = tags_of(source, "python")
    assert defs(tags) == [("A", "class", 1), ("build", "method", 3), ("Inner", "class", 9)]
    assert sigs(tags)["build"] == "def build(first: int, second: str = 'x',) -> 'A':"
    assert sigs(tags)["Inner"] == "class Inner:"
    assert ("A", "call", 7) in refs(tags)


def test_signature_is_cut() -> None:
    params = ", ".join(f"argument_number_{i}: int" for i in range(30))
    tags = tags_of(f"def f({params}) -> None:\n    pass\n", "python")
    (tag,) = [t for t in tags if t.kind == "def"]
    assert len(tag.signature) <= 200 and tag.signature.startswith("def f(argument_number_0: int")
    assert tag.signature.endswith("...")


# --------------------------------------------------------------------------- javascript


def test_javascript_tags() -> None:
    tags = tags_of(JS, "javascript")
    check_common(tags)
    assert defs(tags) == [
        ("MAX_ITEMS", "constant", 3),
        ("createStore", "function", 5),
        ("TodoList", "class", 10),
        ("constructor", "method", 11),
        ("addItem", "method", 16),
        ("onClick", "method", 21),
        ("formatItem", "function", 26),
        ("helper", "function", 28),
        ("App", "function", 32),
    ]
    s = sigs(tags)
    assert s["MAX_ITEMS"] == "const MAX_ITEMS = 50;"
    assert s["createStore"] == "function createStore(reducer, initial)"
    assert s["TodoList"] == "class TodoList extends Component"
    assert s["addItem"] == "addItem(text)"
    assert s["onClick"] == "onClick = (event) =>"
    assert s["formatItem"] == "const formatItem = (item) =>"
    assert s["helper"] == "module.exports.helper = function (x)"
    assert {
        ("reducer", "call", 7),
        ("Component", "type", 10),
        ("createStore", "call", 13),
        ("dispatch", "call", 17),  # method call
        ("Item", "type", 18),  # new Item()
        ("addItem", "call", 22),
        ("formatItem", "call", 29),
        ("TodoList", "call", 33),  # JSX component
    } <= refs(tags)
    assert not any(t.name == "span" or t.name == "state" for t in tags)


# --------------------------------------------------------------------------- typescript


def test_typescript_tags() -> None:
    tags = tags_of(TS, "typescript")
    check_common(tags)
    assert defs(tags) == [
        ("User", "interface", 3),
        ("id", "field", 4),
        ("name", "field", 5),
        ("greet", "method", 6),
        ("UserId", "type", 9),
        ("Role", "enum", 11),
        ("Repository", "class", 16),
        ("find", "method", 17),
        ("UserRepository", "class", 20),
        ("find", "method", 23),
        ("toId", "function", 28),
        ("fetchUser", "function", 30),
    ]
    s = {(t.name, t.line): t.signature for t in tags if t.kind == "def"}
    assert s[("User", 3)] == "interface User"
    assert s[("UserId", 9)] == "type UserId = number | string;"
    assert s[("Role", 11)] == "enum Role"
    assert s[("Repository", 16)] == "abstract class Repository<T extends Entity>"
    assert s[("find", 17)] == "abstract find(id: UserId): Promise<T | undefined>"
    assert s[("UserRepository", 20)] == "class UserRepository extends Repository<User> implements Disposable"
    assert s[("find", 23)] == "async find(id: UserId): Promise<User | undefined>"
    assert s[("toId", 28)] == "const toId = (req: Request): UserId =>"
    assert s[("fetchUser", 30)] == "function fetchUser(id: UserId): Promise<User>"
    r = refs(tags)
    assert {
        ("User", "type", 6),
        ("Entity", "type", 16),
        ("Repository", "type", 20),  # extends
        ("Disposable", "type", 20),  # implements
        ("Map", "type", 21),  # new Map<...>()
        ("UserId", "type", 23),
        ("get", "call", 24),
        ("fetchUser", "call", 24),
        ("parseId", "call", 28),
        ("UserRepository", "type", 31),
        ("find", "call", 31),
    } <= r
    # the names at definition sites are not references
    assert ("User", "type", 3) not in r and ("UserId", "type", 9) not in r
    assert ("UserRepository", "type", 20) not in r


def test_tsx_tags() -> None:
    tags = tags_of(TSX, "tsx")
    check_common(tags)
    assert defs(tags) == [
        ("ButtonProps", "interface", 3),
        ("label", "field", 4),
        ("onPress", "field", 5),
        ("Button", "function", 8),
        ("Toolbar", "function", 12),
    ]
    assert sigs(tags)["Button"] == "const Button = ({ label, onPress }: ButtonProps) =>"
    assert sigs(tags)["Toolbar"] == "function Toolbar(props: { items: ButtonProps[] }): JSX.Element"
    assert {
        ("ButtonProps", "type", 8),
        ("Touchable", "call", 9),
        ("map", "call", 13),
        ("Button", "call", 13),
        ("Element", "type", 12),
    } <= refs(tags)
    assert not any(t.name in ("span", "div") for t in tags)  # HTML tags are not references
    assert syntax_issues(TSX.encode(), "tsx") == []


# --------------------------------------------------------------------------- go


def test_go_tags() -> None:
    tags = tags_of(GO, "go")
    check_common(tags)
    assert defs(tags) == [
        ("DefaultPort", "constant", 8),
        ("Handler", "interface", 10),
        ("Serve", "method", 11),
        ("Server", "struct", 14),
        ("Option", "type", 19),
        ("NewServer", "function", 21),
        ("Start", "method", 29),
    ]
    s = sigs(tags)
    assert s["DefaultPort"] == "const DefaultPort = 8080"
    assert s["Handler"] == "type Handler interface"
    assert s["Server"] == "type Server struct"
    assert s["Option"] == "type Option func(*Server)"
    assert s["NewServer"] == "func NewServer(addr string, opts ...Option) *Server"
    assert s["Start"] == "func (s *Server) Start(ctx context.Context) error"
    r = refs(tags)
    assert {
        ("Request", "type", 11),
        ("Handler", "type", 16),
        ("Option", "type", 21),
        ("Server", "type", 22),  # composite literal
        ("opt", "call", 24),
        ("Server", "type", 29),  # receiver
        ("Context", "type", 29),
        ("Serve", "call", 30),
        ("Errorf", "call", 31),
    } <= r
    assert ("Server", "type", 14) not in r and ("Handler", "type", 10) not in r


# --------------------------------------------------------------------------- rust


def test_rust_tags() -> None:
    tags = tags_of(RS, "rust")
    check_common(tags)
    assert defs(tags) == [
        ("MAX_DEPTH", "constant", 3),
        ("Ast", "struct", 6),
        ("Node", "enum", 10),
        ("Visitor", "trait", 15),
        ("visit", "method", 16),
        ("new", "method", 20),
        ("walk", "method", 24),
        ("Result", "type", 31),
        ("parse", "function", 33),
        ("tests", "module", 40),
        ("helper", "function", 41),
        ("node", "macro", 44),
    ]
    s = sigs(tags)
    assert s["MAX_DEPTH"] == "pub const MAX_DEPTH: usize = 64;"
    assert s["Ast"] == "pub struct Ast"
    assert s["Node"] == "pub enum Node"
    assert s["Visitor"] == "pub trait Visitor"
    assert s["visit"] == "fn visit(&mut self, node: &Node) -> bool;"
    assert s["new"] == "pub fn new() -> Self"
    assert s["walk"] == "pub fn walk<V: Visitor>(&self, visitor: &mut V)"
    assert s["parse"] == "pub fn parse(input: &str) -> Result<Ast>"
    assert s["tests"] == "mod tests"
    assert s["node"] == "macro_rules! node {"
    r = refs(tags)
    assert {
        ("Node", "type", 7),
        ("Ast", "type", 19),  # impl Ast
        ("Ast", "type", 21),  # struct expression
        ("new", "call", 21),  # Vec::new()
        ("Visitor", "type", 24),
        ("visit", "call", 26),  # method call
        ("ParseError", "type", 31),
        ("Ast", "type", 34),  # Ast::new()
        ("new", "call", 34),
        ("tokenize", "call", 35),
        ("println", "call", 36),  # macro invocation
    } <= r
    assert ("Ast", "type", 6) not in r and ("Node", "type", 10) not in r


# --------------------------------------------------------------------------- java


def test_java_tags() -> None:
    tags = tags_of(JAVA, "java")
    check_common(tags)
    assert defs(tags) == [
        ("Cart", "class", 7),
        ("MAX_ITEMS", "constant", 8),
        ("Cart", "constructor", 11),
        ("iterator", "method", 16),
        ("add", "method", 20),
        ("Listener", "interface", 27),
        ("onAdd", "method", 28),
        ("Status", "enum", 31),
        ("Line", "record", 33),
    ]
    s = {(t.name, t.line): t.signature for t in tags if t.kind == "def"}
    assert s[("Cart", 7)] == "public class Cart extends BaseEntity implements Iterable<Item>"  # no @Entity
    assert s[("MAX_ITEMS", 8)] == "public static final int MAX_ITEMS = 100;"
    assert s[("Cart", 11)] == "public Cart(Customer owner)"
    assert s[("iterator", 16)] == "public Iterator<Item> iterator()"  # no @Override
    assert s[("add", 20)] == "public void add(Item item) throws CartFullException"
    assert s[("onAdd", 28)] == "void onAdd(Item item);"
    assert s[("Line", 33)] == "record Line(Item item, int quantity)"
    r = refs(tags)
    assert {
        ("Entity", "name", 6),
        ("BaseEntity", "type", 7),
        ("Iterable", "type", 7),
        ("ArrayList", "type", 9),
        ("Customer", "type", 11),
        ("getId", "call", 12),
        ("Override", "name", 15),
        ("iterator", "call", 17),
        ("size", "call", 21),
        ("CartFullException", "type", 22),  # new
        ("add", "call", 24),
    } <= r
    assert ("Cart", "type", 7) not in r


# --------------------------------------------------------------------------- syntax issues

SAMPLES = {"python": PY, "javascript": JS, "typescript": TS, "tsx": TSX, "go": GO, "rust": RS, "java": JAVA}


@pytest.mark.parametrize("lang", LANGS)
def test_no_syntax_issues_in_valid_code(lang: str) -> None:
    assert syntax_issues(SAMPLES[lang].encode(), lang) == []


BROKEN = [
    # (language, source, expected line, expected text in the message)
    ("python", "def f(a, b):\n    return g(a,\n\n\nx = 1\n", 2, "syntax error"),
    ("python", "class A:\n    def f(self):\n        pass\n    )\n", 4, "`)`"),
    ("python", "def f(:\n    pass\n", 1, "missing `)`"),
    ("javascript", "function f() {\n  if (x) {\n    return 1;\n}\n", 4, "missing `}`"),
    ("javascript", "let a = 1;\nfoo(a b);\n", 2, "`b`"),
    ("typescript", "let x: number = 1;\nlet y: = 2;\n", 2, "`:`"),
    ("tsx", "const A = () => (\n  <div>\n);\n", 1, "syntax error"),
    ("go", "package main\n\nfunc f( {\n}\n", 3, "missing `)`"),
    ("go", "package main\n\nfunc f() {\n\treturn\n", 5, "missing `}`"),
    ("rust", "fn f() {\n    let x = 1\n}\n", 2, "missing `;`"),
    ("rust", "struct A {\n    a: u8,\n\nfn g() {}\n", 4, ""),
    ("java", "class A {\n  void f() {\n    int x = 1\n  }\n}\n", 3, "missing `;`"),
    ("java", "class A {\n  void f( {\n  }\n}\n", 2, "missing `)`"),
]


@pytest.mark.parametrize(("lang", "source", "line", "text"), BROKEN)
def test_syntax_issues_in_broken_code(lang: str, source: str, line: int, text: str) -> None:
    issues = syntax_issues(source.encode(), lang)
    assert issues, f"no issue found in {source!r}"
    assert all(isinstance(i, SyntaxIssue) and i.line >= 1 and i.column >= 1 for i in issues)
    assert line in [i.line for i in issues], issues
    assert any(text in i.message for i in issues), issues
    assert all("\n" not in i.message for i in issues)


def test_syntax_issue_fields_and_limit() -> None:
    source = b"import os\n\n\ndef f():\n    return g(1,\n\n\ndef h():\n    pass\n"
    issue = syntax_issues(source, "python")[0]
    # an ERROR node spanning several lines says which
    assert (issue.line, issue.column) == (5, 5)
    assert issue.message == "syntax error near `return g(1,` (lines 5-8)"
    (issue,) = syntax_issues(b"let a = 1;\nfoo(a b);\n", "javascript")
    assert (issue.line, issue.column, issue.message) == (2, 7, "syntax error near `b`")
    # one issue per line at most, and at most `limit`
    many = "\n".join(f"x{i} = = {i}" for i in range(50)).encode()
    assert len(syntax_issues(many, "python", limit=7)) == 7
    lines = [i.line for i in syntax_issues(many, "python", limit=100)]
    assert len(lines) == len(set(lines))


def test_syntax_issue_column_counts_characters() -> None:
    (issue,) = syntax_issues("const s = 'é' + ) + 1;\n".encode(), "javascript")
    assert (issue.line, issue.column, issue.message) == (1, 17, "syntax error near `)`")


# --------------------------------------------------------------------------- performance


def test_tagging_speed() -> None:
    chunk = PY.replace("DEFAULT_LIMIT", "LIMIT")
    source = "\n".join([chunk] * (6000 // chunk.count("\n") + 1)).encode()
    assert source.count(b"\n") >= 6000
    extract_tags(source, "python")  # warm up (query compiled, parser created)
    start = time.perf_counter()
    tags = extract_tags(source, "python")
    elapsed = time.perf_counter() - start
    assert len(tags) > 3000
    assert elapsed < 0.5, f"tagging 6,000 lines took {elapsed:.3f}s"
