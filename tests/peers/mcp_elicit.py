"""The official Python MCP SDK as a client that declares URL-mode elicitation (and not tasks),
for Countersign's black-box tests of held calls pointed at their console page.

  mcp_elicit.py MODE URL TOKEN TOOL ARGS_JSON ANSWER

MODE is `legacy` (an initialize session: the gateway sends elicitation/create itself) or
`2026-07-28` (no session: the gateway answers input_required and the SDK retries the call with
the user's answer). ANSWER is what the "user" answers every elicitation: accept, decline or
cancel. Prints one JSON object: {"is_error", "text", "meta", "elicitations": [{mode, url,
elicitation_id, message}], "completed": [elicitation ids the server said were complete]}.
"""

import json
import sys

import anyio
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
import mcp_types as types


def text_of(result):
    return "\n".join(getattr(c, "text", "") for c in result.content)


async def main() -> None:
    mode, url, token, tool, arguments, answer = sys.argv[1:7]
    elicitations, completed = [], []

    async def on_elicit(context, params):
        elicitations.append(
            {
                "mode": getattr(params, "mode", None),
                "url": getattr(params, "url", None),
                "elicitation_id": getattr(params, "elicitation_id", None),
                "message": params.message,
            }
        )
        return types.ElicitResult(action=answer)

    async def on_message(message):
        root = getattr(message, "root", message)
        method = getattr(root, "method", None)
        if method == "notifications/elicitation/complete":
            params = getattr(root, "params", None) or {}
            if not isinstance(params, dict):
                params = params.model_dump(by_alias=True)
            completed.append(params.get("elicitationId"))

    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with http:
        client = Client(
            streamable_http_client(url, http_client=http),
            mode=mode,
            elicitation_callback=on_elicit,
            message_handler=on_message,
        )
        async with client:
            result = await client.call_tool(tool, json.loads(arguments))
    print(
        json.dumps(
            {
                "is_error": bool(result.is_error),
                "text": text_of(result),
                "meta": result.meta,
                "elicitations": elicitations,
                "completed": completed,
            },
            default=str,
        )
    )


if __name__ == "__main__":
    anyio.run(main)
