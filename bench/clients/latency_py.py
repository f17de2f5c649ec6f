"""Latency of an allowed MCP tool call with the official Python SDK (`mcp.Client`, protocol
2026-07-28 against both), through Countersign and directly to the same upstream, calls
interleaved one by one. Prints one JSON line of microseconds.
  python3 latency_py.py GATEWAY_URL KEY DIRECT_URL N
"""
import json, sys, time
import anyio
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


async def main():
    gateway, key, direct, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    h1 = create_mcp_http_client(headers={"Authorization": f"Bearer {key}"})
    h2 = create_mcp_http_client()
    times = {"gateway": [], "direct": []}
    async with h1, h2, Client(streamable_http_client(gateway, http_client=h1)) as via, \
            Client(streamable_http_client(direct, http_client=h2)) as straight:
        async def once(client, name, into):
            t = time.perf_counter_ns()
            r = await client.call_tool(name, {"message": "latency"})
            assert not r.is_error, r
            into.append((time.perf_counter_ns() - t) / 1000)
        for _ in range(50):
            await once(via, "remote__echo", [])
            await once(straight, "echo", [])
        for _ in range(n):
            await once(via, "remote__echo", times["gateway"])
            await once(straight, "echo", times["direct"])
    print(json.dumps(times))

anyio.run(main)
