// The TypeScript MCP SDK (@modelcontextprotocol/sdk) as an agent, at its default settings unless
// told otherwise, for Countersign's black-box tests.
//
//   node mcp_client_ts.mjs URL TOKEN TOOL ARGS_JSON [TIMEOUT_MS|default] [retry]
//     -> one JSON line: {"is_error", "text", "protocol", "attempts", "pending_meta"} or
//        {"timed_out": true, "error"}
//
// TIMEOUT_MS is the per-request timeout (the SDK's default is 60 s); a call that times out is
// abandoned the way the SDK does it, and the client then closes, as an agent giving up would.
// With `retry`, a call answered Countersign's "Approval pending" is made again (same arguments,
// same client) every second until it is answered otherwise, as a model told so would.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, token, tool, args, timeoutArg, mode] = process.argv.slice(2);
const timeoutMs = timeoutArg && timeoutArg !== "default" ? timeoutArg : undefined;
const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { Authorization: `Bearer ${token}` } },
});
const client = new Client({ name: "countersign-test", version: "1.0.0" });
await client.connect(transport);
const options = timeoutMs ? { timeout: Number(timeoutMs) } : undefined;
const call = async () => {
  const result = await client.callTool({ name: tool, arguments: JSON.parse(args) }, undefined, options);
  return {
    is_error: Boolean(result.isError),
    text: (result.content ?? []).map((c) => c.text ?? "").join("\n"),
    protocol: transport.protocolVersion ?? null,
    meta: result._meta ?? null,
  };
};
let out;
try {
  out = await call();
  if (mode === "retry") {
    let attempts = 1;
    const pendingMeta = out.meta;
    while (out.is_error && out.text.startsWith("Approval pending")) {
      await new Promise((r) => setTimeout(r, 1000));
      out = await call();
      attempts += 1;
    }
    out.attempts = attempts;
    out.pending_meta = pendingMeta;
  }
} catch (e) {
  out = { timed_out: String(e).includes("timed out"), error: String(e) };
}
await client.close();
console.log(JSON.stringify(out));
