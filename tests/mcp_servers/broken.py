"""A deliberately broken MCP server over stdio: well-framed JSON-RPC, results that are not MCP.

Written without the SDK on purpose (the SDK's server never sends such answers). It speaks the
2025-11-25 initialize handshake, lists three tools, and answers their calls with garbage:
``garbage`` a CallToolResult of the wrong shape, ``off_schema`` structured content that
violates its own output schema, ``noise`` a line that is not JSON (and then nothing).
"""

from __future__ import annotations

import json
import sys

TOOLS = [
    {
        "name": "garbage",
        "description": "a result of the wrong shape",
        "inputSchema": {"type": "object"},
    },
    {
        "name": "off_schema",
        "description": "structured content against its own output schema",
        "inputSchema": {"type": "object"},
        "outputSchema": {
            "type": "object",
            "properties": {"n": {"type": "integer"}},
            "required": ["n"],
        },
    },
    {"name": "noise", "description": "a line that is not JSON", "inputSchema": {"type": "object"}},
]


def send(message: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def answer(request: dict[str, object]) -> None:
    method, rid = request.get("method"), request.get("id")
    if method == "initialize":
        result = {
            "protocolVersion": "2025-11-25",
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "broken", "version": "0"},
        }
        send({"jsonrpc": "2.0", "id": rid, "result": result})
    elif method == "tools/list":
        send({"jsonrpc": "2.0", "id": rid, "result": {"tools": TOOLS}})
    elif method == "tools/call":
        params = request.get("params")
        name = params.get("name") if isinstance(params, dict) else None
        if name == "garbage":
            send(
                {
                    "jsonrpc": "2.0",
                    "id": rid,
                    "result": {"content": "not a list", "isError": "maybe"},
                }
            )
        elif name == "off_schema":
            content = [{"type": "text", "text": "n is a word"}]
            result = {"content": content, "structuredContent": {"n": "seven"}}
            send({"jsonrpc": "2.0", "id": rid, "result": result})
        else:
            sys.stdout.write("this is not json\n")
            sys.stdout.flush()
    else:
        error = {"code": -32601, "message": f"method not found: {method}"}
        send({"jsonrpc": "2.0", "id": rid, "error": error})


for line in sys.stdin:
    message = json.loads(line)
    if message.get("id") is not None:
        answer(message)
