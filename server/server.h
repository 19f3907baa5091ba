/* server — JSON-RPC 2.0 core, MCP lifecycle and tools, transports (stdio,
 * WebSocket and Streamable HTTP on libwebsockets), and warrantd's main. */
#ifndef WR_SERVER_H
#define WR_SERVER_H

/* warrantd: parses the command line (design.md) and serves until stopped.
 * Returns the process exit status. */
int wr_server_main(int argc, char **argv);

#endif
