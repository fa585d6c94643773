"""What both clients share: the MCP session itself and its one line of output."""

import json
import sys
from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client


def log_requests(enabled: bool):
    """httpx2 event hooks printing each request's method, URL (credentials redacted) and
    status on stderr, to see which documents a flow fetches in which order."""
    if not enabled:
        return {}

    async def on_response(response: httpx2.Response) -> None:
        request = response.request
        line = f"http: {request.method} {redact(str(request.url))} -> {response.status_code}"
        if "www-authenticate" in response.headers:
            line += f" (WWW-Authenticate: {response.headers['www-authenticate']})"
        if "location" in response.headers:
            line += f" (Location: {redact(response.headers['location'])})"
        print(line, file=sys.stderr)

    return {"response": [on_response]}


def redact(url: str) -> str:
    """`url` without the values of its one-time credentials."""
    parsed = httpx2.URL(url)
    params = [(k, "…" if k in ("code", "code_verifier") else v) for k, v in parsed.params.multi_items()]
    return str(parsed.copy_with(params=params)) if params else url


async def exercise(url: str, http: httpx2.AsyncClient, tool: str | None, args: dict[str, Any]) -> dict[str, Any]:
    """Initializes an MCP session over Streamable HTTP with `http`, lists the tools and
    calls `tool` (the first one when None) with `args`."""
    # "legacy": the initialize handshake, without a server/discover probe first.
    async with Client(streamable_http_client(url, http_client=http), mode="legacy") as client:
        tools = [t.name for t in (await client.list_tools()).tools]
        if not tools:
            raise RuntimeError("the server lists no tools")
        name = tool or tools[0]
        result = await client.call_tool(name, args)
        text = "\n".join(c.text for c in result.content if getattr(c, "type", None) == "text")
        if result.is_error:
            raise RuntimeError(f"tool {name} returned an error: {text}")
        return {"tools": tools, "result": text}


def emit(output: dict[str, Any]) -> None:
    print(json.dumps(output), flush=True)


def fail(error: BaseException) -> None:
    """One line on stderr naming the innermost failures (anyio wraps them in groups)."""
    leaves: list[BaseException] = []

    def walk(e: BaseException) -> None:
        if isinstance(e, BaseExceptionGroup):
            for inner in e.exceptions:
                walk(inner)
        else:
            leaves.append(e)

    walk(error)
    print("error: " + "; ".join(f"{type(e).__name__}: {e}" for e in leaves), file=sys.stderr)
    sys.exit(1)
