"""`find_references`: where a symbol is used (calls, base classes, decorators, type uses)."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel, Field

from tools.base import Tool, ToolContext, ToolError, ToolResult
from tools.code.find_symbol import format_hits
from tools.code.repo_map import current_repomap, nothing_mapped


class FindReferencesParams(BaseModel):
    name: str = Field(
        description="The identifier whose uses to list, e.g. `make_hashable`. `Class.method` lists uses of "
        "`method` (on any receiver: types are not resolved)."
    )
    limit: int = Field(default=50, ge=1, le=500, description="The most reference sites to list (1-500).")


class FindReferences(Tool):
    name = "find_references"
    Params = FindReferencesParams

    async def run(self, params: FindReferencesParams, ctx: ToolContext) -> ToolResult:
        name = params.name.strip().strip(".")
        if not name or any(c.isspace() for c in name):
            raise ToolError(
                f"`{params.name}` is not an identifier. Give one name such as `make_hashable` or "
                "`Class.method`; use `search` for text or regular expressions."
            )
        repomap = await current_repomap(ctx)
        refs = await asyncio.to_thread(repomap.find_references, name, params.limit)
        ident = name.rpartition(".")[2]
        data = {"references": refs.total, "files": refs.total_files, "definitions": len(refs.definitions)}
        parts = []
        if refs.definitions:
            parts.append(f"`{name}` is defined at:\n{format_hits(refs.definitions[:10])}")
            if len(refs.definitions) > 10:
                parts[-1] += f"\n(and {len(refs.definitions) - 10} more; see find_symbol)"
        if not refs.total:
            if not repomap.files:
                return ToolResult(nothing_mapped(repomap), data=data)
            if refs.definitions:
                parts.append(
                    f"No references to `{ident}` found. The index sees calls, base classes, decorators, "
                    "`new` expressions and type uses; use `search` for other mentions (strings, imports, "
                    "attribute reads)."
                )
            else:
                close = await asyncio.to_thread(repomap.close_names, name)
                hint = f" Similar names: {', '.join(close)}." if close else ""
                parts.append(
                    f"No definition of or reference to `{name}` found in {len(repomap.files)} source "
                    f"files.{hint} Use `search` to look for the text."
                )
            return ToolResult("\n\n".join(parts), data=data)

        lines = []
        for path, sites in refs.files:
            lines.extend(f"{path}:{line}: {text}" for line, text in sites)
        shown = sum(len(sites) for _, sites in refs.files)
        heading = f"{_plural(refs.total, 'reference')} to `{ident}` in {_plural(refs.total_files, 'file')}"
        if "." in name:
            heading += " (any receiver: the index does not resolve types)"
        if shown < refs.total:
            heading += f"; showing {shown}, files that define it first, then the most central files"
        parts.append(heading + ":\n" + "\n".join(lines))
        return ToolResult("\n\n".join(parts), data=data)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"
