"""LangChain's MCP adapters (langchain-mcp-adapters 0.3, on mcp 1.x, so it runs in its own
virtual environment: `.ci/run` makes it) as an agent, at their default settings.

  mcp_client_langchain.py URL TOKEN TOOL ARGS_JSON [retry]
      -> {"library", "is_error", "text", "attempts"}

With `retry`, a call answered Countersign's "Approval pending" is made again (same arguments)
every second until it is answered otherwise, as a model told so would.
"""
import json
import sys

import anyio
from langchain_mcp_adapters.client import MultiServerMCPClient


async def main() -> None:
    url, token, tool, arguments = sys.argv[1:5]
    retry = sys.argv[5:6] == ["retry"]
    client = MultiServerMCPClient(
        {"gw": {"url": url, "transport": "streamable_http", "headers": {"Authorization": f"Bearer {token}"}}}
    )
    tools = {t.name: t for t in await client.get_tools()}

    async def call():
        try:
            out = await tools[tool].ainvoke(json.loads(arguments))
            is_error = False
        except Exception as e:  # the adapters raise on an `isError` result
            out, is_error = str(e), True
        if isinstance(out, list):
            out = "\n".join(c.get("text", "") if isinstance(c, dict) else str(c) for c in out)
        elif isinstance(out, tuple):
            out = out[0] if isinstance(out[0], str) else json.dumps(out[0], default=str)
        return str(out), is_error

    out, is_error = await call()
    attempts = 1
    while retry and out.startswith("Approval pending"):
        await anyio.sleep(1)
        out, is_error = await call()
        attempts += 1
    print(
        json.dumps({"library": "langchain", "is_error": is_error, "text": out, "attempts": attempts}),
        flush=True,
    )


if __name__ == "__main__":
    anyio.run(main)
