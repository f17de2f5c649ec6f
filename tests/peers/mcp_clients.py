"""Popular MCP client libraries, each at its default settings, as agents for Countersign's
black-box tests (issue 15: results every client accepts, held calls, clients that leave).

  mcp_clients.py LIBRARY URL TOKEN call TOOL ARGS_JSON
      -> {"library", "is_error", "text", "protocol"}   (one JSON line on stdout)
  mcp_clients.py LIBRARY URL TOKEN hang TOOL ARGS_JSON
      -> calls the tool and never returns: the test kills this process (a client that crashed)

LIBRARY is one of:
  mcp          the official Python SDK's `mcp.Client` (2.x: probes `server/discover`, settles on
               protocol 2026-07-28 when the server offers it)
  mcp-session  the same SDK's `ClientSession.initialize()` (protocol 2025-11-25, a session)
  fastmcp      FastMCP's `fastmcp.Client` (4.x, over the same SDK)
  openai       the OpenAI Agents SDK's `MCPServerStreamableHttp` (its default 5 s timeout)

`hang` sends a progress token (it passes a progress callback), so only the connection closing
can tell the server the client has gone.
"""

import json
import sys

import anyio


def text_of(result) -> str:
    return "\n".join(getattr(c, "text", "") or "" for c in result.content)


def answer(library, result, protocol):
    return {
        "library": library,
        "is_error": bool(getattr(result, "is_error", None) or getattr(result, "isError", None)),
        "text": text_of(result),
        "protocol": protocol,
    }


async def on_progress(*_args, **_kwargs):
    pass


async def with_mcp(url, token, action, tool, arguments):
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with http, Client(streamable_http_client(url, http_client=http)) as client:
        version = getattr(client.session, "protocol_version", None)
        if action == "hang":
            await client.call_tool(tool, arguments, progress_callback=on_progress)
        result = await client.call_tool(tool, arguments)
        return answer("mcp", result, str(version) if version else None)


async def with_session(url, token, action, tool, arguments):
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with http, streamable_http_client(url, http_client=http) as streams:
        async with ClientSession(streams[0], streams[1]) as session:
            init = await session.initialize()
            if action == "hang":
                await session.call_tool(tool, arguments, progress_callback=on_progress)
            result = await session.call_tool(tool, arguments)
            return answer("mcp-session", result, init.protocol_version)


async def with_fastmcp(url, token, action, tool, arguments):
    from fastmcp import Client
    from fastmcp.client.transports import StreamableHttpTransport

    transport = StreamableHttpTransport(url, headers={"Authorization": f"Bearer {token}"})
    async with Client(transport) as client:
        result = await client.call_tool(tool, arguments, raise_on_error=False)
        return answer("fastmcp", result, None)


async def with_openai(url, token, action, tool, arguments):
    from agents.mcp import MCPServerStreamableHttp

    server = MCPServerStreamableHttp(
        params={"url": url, "headers": {"Authorization": f"Bearer {token}"}}
    )
    async with server:
        result = await server.call_tool(tool, arguments)
        return answer("openai", result, None)


LIBRARIES = {
    "mcp": with_mcp,
    "mcp-session": with_session,
    "fastmcp": with_fastmcp,
    "openai": with_openai,
}


async def main() -> None:
    library, url, token, action, tool, arguments = sys.argv[1:7]
    if action not in ("call", "hang"):
        raise SystemExit(f"unknown action {action}")
    out = await LIBRARIES[library](url, token, action, tool, json.loads(arguments))
    print(json.dumps(out, default=str), flush=True)


if __name__ == "__main__":
    anyio.run(main)
