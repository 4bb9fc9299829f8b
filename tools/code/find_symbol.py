"""`find_symbol`: where a class, function, method, type or constant is defined."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel, Field

from tools.base import Tool, ToolContext, ToolError, ToolResult
from tools.code.repo_map import current_repomap, nothing_mapped
from tools.code.repomap import SymbolHit


class FindSymbolParams(BaseModel):
    name: str = Field(
        description="The identifier to look up, e.g. `QuerySet`, `parse_args`, or `Class.method` to narrow "
        "a method to one class."
    )
    fuzzy: bool = Field(
        default=True,
        description="When no definition has this name (in any case), list similar and containing names.",
    )
    limit: int = Field(default=20, ge=1, le=200, description="The most definitions to list (1-200).")


def format_hits(hits: list[SymbolHit]) -> str:
    return "\n".join(hit.format() for hit in hits)


class FindSymbol(Tool):
    name = "find_symbol"
    Params = FindSymbolParams

    async def run(self, params: FindSymbolParams, ctx: ToolContext) -> ToolResult:
        name = params.name.strip()
        if not name or any(c.isspace() for c in name):
            raise ToolError(
                f"`{params.name}` is not an identifier. Give one name such as `QuerySet` or `Class.method`; "
                "use `search` for text or regular expressions."
            )
        repomap = await current_repomap(ctx)
        hits = await asyncio.to_thread(repomap.find_symbol, name, params.fuzzy, params.limit)
        if not hits:
            if not repomap.files:
                return ToolResult(nothing_mapped(repomap), data={"found": 0})
            close = await asyncio.to_thread(repomap.close_names, name)
            hint = f" Similar names: {', '.join(close)}." if close else ""
            return ToolResult(
                f"No definition of `{name}` found in {len(repomap.files)} source files.{hint} "
                "Only definitions are indexed (classes, functions, methods, types, module constants); "
                "use `search` to find other text.",
                data={"found": 0},
            )
        exact = [h for h in hits if h.match == "exact"]
        other = [h for h in hits if h.match != "exact"]
        parts = []
        if exact:
            parts.append(f"{_plural(len(exact), 'definition')} of `{name}`:\n{format_hits(exact)}")
        else:
            parts.append(f"No exact definition of `{name}`.")
        case = [h for h in other if h.match == "case"]
        fuzzy = [h for h in other if h.match == "fuzzy"]
        if case:
            parts.append(f"Same name in another case:\n{format_hits(case)}")
        if fuzzy:
            parts.append(f"Similar names:\n{format_hits(fuzzy)}")
        text = "\n\n".join(parts)
        if len(hits) >= params.limit:
            text += (
                f"\n\n(showing the first {params.limit}; use `Class.method` or a higher limit to see others)"
            )
        return ToolResult(text, data={"found": len(exact), "similar": len(other)})


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"
