"""The LangGraph StateGraph: a model node, a tools node and the routing between them. The work
of each node lives in `agent.loop.AgentLoop`; this module only wires it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent.state import AgentState

if TYPE_CHECKING:
    from agent.loop import AgentLoop


# Routers are async on purpose: LangGraph runs a sync function through a thread executor when the
# graph runs async, which costs ~0.15 ms per superstep (bench/overhead.py).
async def route_after_model(state: AgentState) -> str:
    if state.get("stop"):
        return "end"
    last = state["messages"][-1] if state.get("messages") else {}
    if last.get("role") == "assistant" and last.get("tool_calls"):
        return "tools"
    return "model"  # e.g. after a nudge for an empty or cut-off reply


async def route_after_tools(state: AgentState) -> str:
    return "end" if state.get("stop") else "model"


def build_graph(loop: AgentLoop) -> Any:
    from langgraph.graph import END, START, StateGraph

    graph = StateGraph(AgentState)
    graph.add_node("model", loop.model_node)
    graph.add_node("tools", loop.tools_node)
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", route_after_model, {"tools": "tools", "model": "model", "end": END})
    graph.add_conditional_edges("tools", route_after_tools, {"model": "model", "end": END})
    return graph.compile()
