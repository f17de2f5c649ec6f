"""Popular MCP client libraries, each at its default settings, as agents for Countersign's
black-box tests (issue 15: results every client accepts, held calls, clients that leave).

  mcp_clients.py LIBRARY URL TOKEN call TOOL ARGS_JSON
      -> {"library", "is_error", "text", "protocol"}   (one JSON line on stdout)
  mcp_clients.py LIBRARY URL TOKEN hang TOOL ARGS_JSON
      -> calls the tool and never returns: the test kills this process (a client that crashed)
  mcp_clients.py LIBRARY URL TOKEN retry TOOL ARGS_JSON
      -> calls the tool, and again (same arguments, same client) every second for as long as
         the answer is Countersign's "Approval pending", as a model told so would; prints the
         last answer with "attempts" and the "meta" of the first pending answer

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
from contextlib import asynccontextmanager

import anyio


def text_of(result) -> str:
    return "\n".join(getattr(c, "text", "") or "" for c in result.content)


def answer(library, result, protocol):
    meta = getattr(result, "meta", None)
    return {
        "library": library,
        "is_error": bool(getattr(result, "is_error", None) or getattr(result, "isError", None)),
        "text": text_of(result),
        "protocol": protocol,
        "meta": meta if isinstance(meta, dict) else None,
    }


async def on_progress(*_args, **_kwargs):
    pass


@asynccontextmanager
async def with_mcp(url, token):
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with http, Client(streamable_http_client(url, http_client=http)) as client:
        version = getattr(client.session, "protocol_version", None)

        async def call(tool, arguments, progress=None):
            result = await client.call_tool(tool, arguments, progress_callback=progress)
            return answer("mcp", result, str(version) if version else None)

        yield call


@asynccontextmanager
async def with_session(url, token):
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with http, streamable_http_client(url, http_client=http) as streams:
        async with ClientSession(streams[0], streams[1]) as session:
            init = await session.initialize()

            async def call(tool, arguments, progress=None):
                result = await session.call_tool(tool, arguments, progress_callback=progress)
                return answer("mcp-session", result, init.protocol_version)

            yield call


@asynccontextmanager
async def with_fastmcp(url, token):
    from fastmcp import Client
    from fastmcp.client.transports import StreamableHttpTransport

    transport = StreamableHttpTransport(url, headers={"Authorization": f"Bearer {token}"})
    async with Client(transport) as client:

        async def call(tool, arguments, progress=None):
            result = await client.call_tool(tool, arguments, raise_on_error=False)
            return answer("fastmcp", result, None)

        yield call


@asynccontextmanager
async def with_openai(url, token):
    from agents.mcp import MCPServerStreamableHttp

    server = MCPServerStreamableHttp(
        params={"url": url, "headers": {"Authorization": f"Bearer {token}"}}
    )
    async with server:

        async def call(tool, arguments, progress=None):
            return answer("openai", await server.call_tool(tool, arguments), None)

        yield call


LIBRARIES = {
    "mcp": with_mcp,
    "mcp-session": with_session,
    "fastmcp": with_fastmcp,
    "openai": with_openai,
}

PENDING = "Approval pending"


async def main() -> None:
    library, url, token, action, tool, arguments = sys.argv[1:7]
    arguments = json.loads(arguments)
    if action not in ("call", "hang", "retry"):
        raise SystemExit(f"unknown action {action}")
    async with LIBRARIES[library](url, token) as call:
        if action == "hang":
            await call(tool, arguments, on_progress)
        out = await call(tool, arguments)
        if action == "retry":
            attempts, first_meta = 1, out.get("meta")
            while out["is_error"] and out["text"].startswith(PENDING):
                await anyio.sleep(1)
                out = await call(tool, arguments)
                attempts += 1
            out["attempts"], out["pending_meta"] = attempts, first_meta
    print(json.dumps(out, default=str), flush=True)


if __name__ == "__main__":
    anyio.run(main)
