"""An MCP client that authenticates with an API key and nothing else.

    MCP_API_KEY=... python key_client.py SERVER_MCP_URL [--tool NAME] [--args JSON] [--verbose]

The Python SDK over Streamable HTTP with `Authorization: Bearer $MCP_API_KEY`
on every request and no OAuth provider: initialize, list the tools, call
`--tool` (default: the first listed) with `--args`. Prints one JSON line,
`{"tools": [...], "result": "...", "authorized": true}`, as oauth_client.py
does. Exits non-zero with the error on stderr on any failure, and when the
server answers with an OAuth challenge or anything fetches OAuth metadata:
the key must be enough on its own. The key is never printed.
"""

import argparse
import json
import os

import anyio
import httpx2

from common import emit, exercise, fail, log_requests


class OAuthAttempted(Exception):
    pass


# The discovery documents an OAuth flow starts from.
OAUTH_PATHS = ("/.well-known/oauth-protected-resource", "/.well-known/oauth-authorization-server",
               "/.well-known/openid-configuration")


async def refuse_oauth_request(request: httpx2.Request) -> None:
    if request.url.path.startswith(OAUTH_PATHS):
        raise OAuthAttempted(f"an OAuth flow was started: {request.method} {request.url.path}")


async def refuse_oauth_challenge(response: httpx2.Response) -> None:
    if response.status_code in (401, 403):
        challenge = response.headers.get("www-authenticate", "")
        raise OAuthAttempted(
            f"the server refused the API key ({response.status_code}"
            + (f", WWW-Authenticate: {challenge}" if challenge else "")
            + ")"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="the MCP endpoint, e.g. http://127.0.0.1:8080/mcp")
    parser.add_argument("--tool", help="the tool to call (default: the first listed)")
    parser.add_argument("--args", default="{}", help="the tool's arguments as a JSON object")
    parser.add_argument("--verbose", action="store_true", help="log each HTTP request on stderr")
    args = parser.parse_args()

    key = os.environ.get("MCP_API_KEY", "")
    if not key:
        raise RuntimeError("MCP_API_KEY is not set")
    hooks = log_requests(args.verbose)
    hooks = {
        "request": [refuse_oauth_request],
        "response": [refuse_oauth_challenge, *hooks.get("response", [])],
    }
    async with httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {key}"}, timeout=30, event_hooks=hooks
    ) as http:
        output = await exercise(args.url, http, args.tool, json.loads(args.args))
    # Every request went through on the key.
    emit({**output, "authorized": True})


if __name__ == "__main__":
    try:
        anyio.run(main)
    except Exception as error:  # noqa: BLE001 - any failure is the exit status
        fail(error)
