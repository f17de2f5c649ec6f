"""An MCP server (official Python SDK, stdio) that misbehaves on request, for testing how the
Countersign gateway copes with an upstream that hangs or crashes."""

import os
import time

from mcp.server.mcpserver import MCPServer

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
def crash() -> str:
    """Exits the process in the middle of the call."""
    os._exit(3)


if __name__ == "__main__":
    server.run("stdio")
