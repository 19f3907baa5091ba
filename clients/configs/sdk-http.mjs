// Connect to warrantd over Streamable HTTP with the official TypeScript SDK.
//   WARRANT_TOKEN=... node sdk-http.mjs
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const transport = new StreamableHTTPClientTransport(new URL("http://127.0.0.1:8765/mcp"), {
  requestInit: { headers: { Authorization: `Bearer ${process.env.WARRANT_TOKEN}` } },
});
const client = new Client({ name: "warrant-example", version: "1.0.0" });
await client.connect(transport);
const { tools } = await client.listTools();
console.log(tools.map((t) => t.name).join(", "));
await client.close();
