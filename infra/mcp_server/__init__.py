"""agora as an MCP server (`agora mcp`): its tools and resources over agora's client library
(``server``), the bearer token of its HTTP endpoint (``auth``), and that endpoint (``http``).
docs/mcp.md, "agora as an MCP server", is the user's view."""
