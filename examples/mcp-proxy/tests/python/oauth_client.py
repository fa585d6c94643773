"""An MCP client that signs in with OAuth, through the Python SDK's own client.

    python oauth_client.py SERVER_MCP_URL LOGIN [--tool NAME] [--args JSON]
        [--redirect-uri URI] [--verbose]

The SDK's `OAuthClientProvider` does everything a real client does after the
server's 401: protected resource metadata (RFC 9728), authorization server
metadata (RFC 8414 / OpenID discovery), dynamic client registration (RFC 7591)
as a public client, authorization code with PKCE S256 and `resource`
(RFC 8707), the token request. Only the person is stood in for: the redirect
handler walks the authorization server's development login page (LOGIN, any
password) and consent page over HTTP and stops at the redirect to the
redirect URI, which is never served, handing its `code`, `state` and `iss`
to the callback handler.

Prints one JSON line, `{"tools": [...], "result": "...", "authorized": true}`
(`authorized` is whether a token was obtained);
exits non-zero with the error on stderr on any failure. The token is never
printed; `--verbose` logs each HTTP request (credentials redacted) on stderr.
"""

import argparse
import json
import sys
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import anyio
import httpx2
from mcp.client.auth import OAuthClientProvider
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

from common import emit, exercise, fail, log_requests

# Never listened on: the redirect is read from the Location header.
DEFAULT_REDIRECT_URI = "http://127.0.0.1:53682/callback"
# Enough for login, consent and the hops between them.
MAX_STEPS = 12


class MemoryStorage:
    """Tokens and the registered client for this run only."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


class Forms(HTMLParser):
    """The forms of a page: action, method and the named inputs with their values."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form":
            self.forms.append({"action": a.get("action") or "", "method": (a.get("method") or "get").lower(), "inputs": {}})
        elif tag == "input" and self.forms and a.get("name"):
            self.forms[-1]["inputs"][a["name"]] = a.get("value") or ""


class Person:
    """Stands in for the person at the browser: follows the authorization URL through the
    authorization server's login and consent pages, and keeps what the final redirect
    to `redirect_uri` carries."""

    def __init__(self, login: str, redirect_uri: str, verbose: bool) -> None:
        self.login = login
        self.redirect_uri = redirect_uri
        self.verbose = verbose
        self.result: AuthorizationCodeResult | None = None

    async def redirect_handler(self, authorization_url: str) -> None:
        # A browser of its own: a cookie jar, redirects taken one at a time.
        async with httpx2.AsyncClient(
            follow_redirects=False, timeout=30, event_hooks=log_requests(self.verbose)
        ) as browser:
            response = await browser.get(authorization_url)
            for _ in range(MAX_STEPS):
                if response.is_redirect:
                    location = urljoin(str(response.url), response.headers["location"])
                    if location.startswith(self.redirect_uri):
                        self.result = self.callback(location)
                        return
                    response = await browser.get(location)
                    continue
                if response.status_code != 200:
                    raise RuntimeError(
                        f"the authorization server answered {response.status_code} at {response.url.path}: "
                        f"{page_text(response.text)}"
                    )
                response = await self.submit(browser, response)
            raise RuntimeError(f"no redirect to {self.redirect_uri} after {MAX_STEPS} steps")

    async def submit(self, browser: httpx2.AsyncClient, page: httpx2.Response) -> httpx2.Response:
        """Fills in and sends the page's form: the login form with LOGIN and a password,
        any other (the consent form) as it is."""
        parser = Forms()
        parser.feed(page.text)
        forms = [f for f in parser.forms if f["method"] == "post"]
        if not forms:
            raise RuntimeError(f"a page with no form at {page.url.path}: {page_text(page.text)}")
        form = forms[0]
        fields = dict(form["inputs"])
        if "login" in fields:
            fields["login"] = self.login
            fields["password"] = "any password"
        return await browser.post(urljoin(str(page.url), form["action"]), data=fields)

    def callback(self, location: str) -> AuthorizationCodeResult:
        query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        if "error" in query:
            raise RuntimeError(f"authorization refused: {query['error']}: {query.get('error_description', '')}")
        if "code" not in query:
            raise RuntimeError("the redirect carries no code")
        return AuthorizationCodeResult(code=query["code"], state=query.get("state"), iss=query.get("iss"))

    async def callback_handler(self) -> AuthorizationCodeResult:
        if self.result is None:
            raise RuntimeError("the authorization did not finish")
        result, self.result = self.result, None
        return result


def page_text(html: str) -> str:
    """The start of a page's text, for an error message."""
    text = " ".join(html.replace("<", " <").split())
    return text[:300]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="the MCP endpoint, e.g. http://127.0.0.1:8080/mcp")
    parser.add_argument("login", help="who signs in at the authorization server")
    parser.add_argument("--tool", help="the tool to call (default: the first listed)")
    parser.add_argument("--args", default="{}", help="the tool's arguments as a JSON object")
    parser.add_argument("--redirect-uri", default=DEFAULT_REDIRECT_URI)
    parser.add_argument("--verbose", action="store_true", help="log each HTTP request on stderr")
    args = parser.parse_args()

    person = Person(args.login, args.redirect_uri, args.verbose)
    storage = MemoryStorage()
    auth = OAuthClientProvider(
        server_url=args.url,
        client_metadata=OAuthClientMetadata(
            client_name="tower-api-keys test client",
            redirect_uris=[args.redirect_uri],
            grant_types=["authorization_code"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=person.redirect_handler,
        callback_handler=person.callback_handler,
    )
    async with httpx2.AsyncClient(auth=auth, timeout=30, event_hooks=log_requests(args.verbose)) as http:
        output = await exercise(args.url, http, args.tool, json.loads(args.args))
    # True once the flow got a token (false only if the server never asked for one).
    emit({**output, "authorized": storage.tokens is not None})


if __name__ == "__main__":
    try:
        anyio.run(main)
    except Exception as error:  # noqa: BLE001 - any failure is the exit status
        fail(error)
