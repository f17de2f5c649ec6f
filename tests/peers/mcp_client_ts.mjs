// The TypeScript MCP SDK (@modelcontextprotocol/sdk) as an agent, at its default settings unless
// told otherwise, for Countersign's black-box tests.
//
//   node mcp_client_ts.mjs URL TOKEN TOOL ARGS_JSON [TIMEOUT_MS]
//     -> one JSON line: {"is_error", "text", "protocol"} or {"timed_out": true, "error"}
//
// TIMEOUT_MS is the per-request timeout (the SDK's default is 60 s); a call that times out is
// abandoned the way the SDK does it, and the client then closes, as an agent giving up would.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, token, tool, args, timeoutMs] = process.argv.slice(2);
const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { Authorization: `Bearer ${token}` } },
});
const client = new Client({ name: "countersign-test", version: "1.0.0" });
await client.connect(transport);
const options = timeoutMs ? { timeout: Number(timeoutMs) } : undefined;
let out;
try {
  const result = await client.callTool({ name: tool, arguments: JSON.parse(args) }, undefined, options);
  out = {
    is_error: Boolean(result.isError),
    text: (result.content ?? []).map((c) => c.text ?? "").join("\n"),
    protocol: transport.protocolVersion ?? null,
  };
} catch (e) {
  out = { timed_out: String(e).includes("timed out"), error: String(e) };
}
await client.close();
console.log(JSON.stringify(out));
