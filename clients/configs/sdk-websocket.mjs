// Connect to warrantd over WebSocket with the official TypeScript SDK.
// The SDK's WebSocketClientTransport cannot set headers, so the token goes
// in the access_token query parameter (warrantd never logs it).
// Node >= 22 has a global WebSocket; on Node 20 run with --experimental-websocket.
//   WARRANT_TOKEN=... node sdk-websocket.mjs
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { WebSocketClientTransport } from "@modelcontextprotocol/sdk/client/websocket.js";

const url = new URL("ws://127.0.0.1:8765/ws");
url.searchParams.set("access_token", process.env.WARRANT_TOKEN);
const client = new Client({ name: "warrant-example", version: "1.0.0" });
await client.connect(new WebSocketClientTransport(url));

const { structuredContent: policy } = await client.callTool({ name: "describe_policy", arguments: {} });
console.log("I am", policy.agent_id, "under policy", policy.policy.name);
await client.close();
