// Latency of an allowed MCP tool call with the TypeScript SDK, through Countersign and directly
// to the same upstream, calls interleaved one by one. Prints one JSON line of microseconds.
//   node latency.mjs GATEWAY_URL KEY DIRECT_URL N
import { Client } from "../../tests/peers/node_modules/@modelcontextprotocol/sdk/dist/esm/client/index.js";
import { StreamableHTTPClientTransport } from "../../tests/peers/node_modules/@modelcontextprotocol/sdk/dist/esm/client/streamableHttp.js";

const [gateway, key, direct, n] = process.argv.slice(2);
async function connect(url, headers) {
  const client = new Client({ name: "latency", version: "1.0.0" });
  await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } }));
  return client;
}
const via = await connect(gateway, { Authorization: `Bearer ${key}` });
const straight = await connect(direct, {});
const times = { gateway: [], direct: [] };
async function once(client, name, into) {
  const t = process.hrtime.bigint();
  const r = await client.callTool({ name, arguments: { message: "latency" } });
  if (r.isError) throw new Error(JSON.stringify(r));
  into.push(Number(process.hrtime.bigint() - t) / 1000);
}
for (let i = 0; i < 50; i++) { await once(via, "remote__echo", []); await once(straight, "echo", []); }
for (let i = 0; i < Number(n); i++) {
  await once(via, "remote__echo", times.gateway);
  await once(straight, "echo", times.direct);
}
await via.close();
await straight.close();
console.log(JSON.stringify(times));
