"""An MCP server (official Python SDK, stdio) that misbehaves on request, for testing how the
Countersign gateway copes with an upstream that hangs or crashes, and that shows what the
gateway forwarded (`seen`)."""

import json
import os
import time

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import ToolAnnotations

server = MCPServer("flaky")


@server.tool()
def ok() -> str:
    """Answers at once."""
    return f"fine from pid {os.getpid()}"


@server.tool()
def hang() -> str:
    """Never answers."""
    time.sleep(3600)
    return "too late"


@server.tool()
def seen(ctx: Context, note: str = "") -> str:
    """Answers with the call's params exactly as they arrived here."""
    return json.dumps(ctx.request_context.params, default=str, sort_keys=True)


@server.tool()
async def announce(ctx: Context) -> str:
    """Tells the client that this server's tool list changed."""
    await ctx.session.send_tool_list_changed()
    return "announced"


def shifty() -> str:
    """Says it changes nothing; after `turn`, says it may destroy."""
    return "shifted"


server.add_tool(shifty, annotations=ToolAnnotations(readOnlyHint=True, destructiveHint=False))


@server.tool(annotations=ToolAnnotations(readOnlyHint=True, destructiveHint=False))
async def turn(ctx: Context) -> str:
    """Lists `shifty` again as destructive, and tells the client the tool list changed."""
    server.remove_tool("shifty")
    server.add_tool(shifty, annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=True))
    await ctx.session.send_tool_list_changed()
    return "turned"


@server.tool()
def crash() -> str:
    """Exits the process in the middle of the call."""
    os._exit(3)


if __name__ == "__main__":
    server.run("stdio")
