"""A real MCP client (the official Python SDK) for Countersign's black-box tests.

Connects to the gateway's /mcp (Streamable HTTP, with the agent's key) or to
`countersign mcp stdio`, does one thing, and prints one JSON object on stdout.

  mcp_client.py http URL TOKEN ACTION [ARGS...]
  mcp_client.py stdio COUNTERSIGN_BINARY URL TOKEN ACTION [ARGS...]

ACTION is one of:
  list                           -> {"tools": [names], "protocol": version}
  call TOOL ARGS_JSON [JUSTIFICATION]
                                 -> {"is_error", "text", "meta", "progress": [messages]}
  cancel TOOL ARGS_JSON          -> calls with a progress token, cancels the call after the first
                                    progress notification: {"cancelled": true, "progress": [...]}
  resources                      -> {"resources": [uris], "read": text of the first, or error}
  prompts                        -> {"prompts": [names], "first": messages of the first}
"""

import json
import os
import sys

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


def text_of(result):
    return "\n".join(getattr(c, "text", "") for c in result.content)


async def act(session: ClientSession, action: str, args: list[str]) -> dict:
    init = session.initialize_result or await session.initialize()
    if action == "list":
        tools = await session.list_tools()
        return {"tools": [t.name for t in tools.tools], "protocol": init.protocol_version}
    if action == "call":
        tool, arguments = args[0], json.loads(args[1])
        meta = {"io.countersign/justification": args[2]} if len(args) > 2 else None
        if len(args) > 3:
            meta["traceparent"] = args[3]
        progress = []

        async def on_progress(value, total, message):
            progress.append(message)

        result = await session.call_tool(
            tool, arguments, progress_callback=on_progress, meta=meta
        )
        return {
            "is_error": bool(result.is_error),
            "text": text_of(result),
            "meta": result.meta,
            "progress": progress,
        }
    if action == "cancel":
        tool, arguments = args[0], json.loads(args[1])
        progress = []
        with anyio.CancelScope() as scope:

            async def on_progress(value, total, message):
                progress.append(message)
                scope.cancel()

            await session.call_tool(tool, arguments, progress_callback=on_progress)
        return {"cancelled": scope.cancel_called, "progress": progress}
    if action == "resources":
        listed = await session.list_resources()
        uris = [str(r.uri) for r in listed.resources]
        try:
            read = await session.read_resource(uris[0])
            first = [getattr(c, "text", None) for c in read.contents]
        except Exception as e:  # a refusal is a JSON-RPC error
            first = {"error": str(e)}
        return {"resources": uris, "read": first}
    if action == "prompts":
        listed = await session.list_prompts()
        names = [p.name for p in listed.prompts]
        got = await session.get_prompt(names[0])
        return {"prompts": names, "first": [m.model_dump(mode="json") for m in got.messages]}
    raise SystemExit(f"unknown action {action}")


async def main() -> None:
    mode = sys.argv[1]
    if mode == "http":
        url, token, action, rest = sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
        http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
        async with http, streamable_http_client(url, http_client=http) as streams:
            read, write = streams[0], streams[1]
            async with ClientSession(read, write) as session:
                out = await act(session, action, rest)
    elif mode == "stdio":
        binary, url, token, action, rest = (
            sys.argv[2],
            sys.argv[3],
            sys.argv[4],
            sys.argv[5],
            sys.argv[6:],
        )
        env = dict(os.environ, COUNTERSIGN_URL=url, COUNTERSIGN_TOKEN=token)
        params = StdioServerParameters(command=binary, args=["mcp", "stdio"], env=env)
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as session:
                out = await act(session, action, rest)
    else:
        raise SystemExit(f"unknown mode {mode}")
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    anyio.run(main)
