"""Who may see the dashboard. On loopback it is open to this machine unless a token is set;
bound to any other address it needs the bearer token (``AGORA_UI_TOKEN``, or a file), and
refuses to start without one (the rules of every agora HTTP endpoint,
:mod:`infra.platform.bearer`).

A request passes with ``Authorization: Bearer <token>``, or with the session cookie that
signing in at ``/login`` sets (HttpOnly, SameSite=Strict; its value is derived from the token,
never the token itself). A request that changes something (a retry) must also carry the
``X-Agora-Dashboard`` header, which only the dashboard's own script sends: a page of another
site can neither read the cookie nor add that header without the browser asking first.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import quote

from starlette.datastructures import Headers
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from infra.dashboard.pages import login_page
from infra.platform.bearer import TokenSource, tokens_match

__all__ = [
    "ACTION_HEADER",
    "PUBLIC_PATHS",
    "SESSION_COOKIE",
    "UI_TOKEN",
    "Access",
    "DashboardGuard",
    "session_value",
]

UI_TOKEN = TokenSource(
    endpoint="agora ui",
    purpose="dashboard",
    env_var="AGORA_UI_TOKEN",
    file_option="--token-file (AGORA_UI_TOKEN_FILE)",
)
SESSION_COOKIE = "agora_ui_session"
ACTION_HEADER = "x-agora-dashboard"
PUBLIC_PATHS = frozenset({"/login", "/static/dashboard.css"})
_SAFE_METHODS = frozenset({"GET", "HEAD"})


def session_value(token: str) -> str:
    """The cookie's value: a keyed digest of the token (the token never leaves the browser's
    form), which changes when the token does."""
    return hmac.new(token.encode(), b"agora-ui-session-v1", hashlib.sha256).hexdigest()


class Access:
    """Who is signed in, and signing in. ``token`` None: open to everyone (loopback)."""

    def __init__(self, token: str | None) -> None:
        self._token = token
        self._session = session_value(token) if token else None

    @property
    def required(self) -> bool:
        return self._token is not None

    def signed_in(self, headers: Headers, cookies: dict[str, str]) -> bool:
        if self._token is None or self._session is None:
            return True
        scheme, _, given = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and tokens_match(given.strip(), self._token):
            return True
        return tokens_match(cookies.get(SESSION_COOKIE, ""), self._session)

    def refusal(self, scope: Scope, headers: Headers) -> Response | None:
        """Why the request may not pass (a response to send instead), or None."""
        path, method = scope["path"], scope["method"]
        if method not in _SAFE_METHODS and path != "/login" and ACTION_HEADER not in headers:
            return JSONResponse(
                {"error": f"forbidden: a change needs the {ACTION_HEADER} header"},
                status_code=403,
            )
        if path in PUBLIC_PATHS or self.signed_in(headers, _cookies(headers)):
            return None
        if "text/html" in headers.get("accept", "") and method == "GET":
            then = quote(path, safe="/")
            return HTMLResponse(login_page(then=then), status_code=401, headers=_challenge())
        return JSONResponse(
            {"error": "unauthorized: send Authorization: Bearer <token>, or sign in at /login"},
            status_code=401,
            headers=_challenge(),
        )

    def login(self, given: str, then: str) -> Response:
        """The answer to the sign-in form: the session cookie and back where the user was."""
        if self._token is None or self._session is None:
            return RedirectResponse(_local(then), status_code=303)
        if not tokens_match(given.strip(), self._token):
            return HTMLResponse(login_page(failed=True, then=then), status_code=401)
        answer = RedirectResponse(_local(then), status_code=303)
        answer.set_cookie(SESSION_COOKIE, self._session, httponly=True, samesite="strict", path="/")
        return answer


class DashboardGuard:
    """Every request through :class:`Access` first. Plain ASGI: SSE streams pass untouched."""

    def __init__(self, app: ASGIApp, *, access: Access) -> None:
        self._app = app
        self._access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refused = self._access.refusal(scope, Headers(scope=scope))
            if refused is not None:
                await refused(scope, receive, send)
                return
        await self._app(scope, receive, send)


def _challenge() -> dict[str, str]:
    return {"WWW-Authenticate": 'Bearer realm="agora dashboard"'}


def _local(then: str) -> str:
    """Only a path of this dashboard (no open redirect to another site)."""
    return then if then.startswith("/") and not then.startswith("//") else "/goals"


def _cookies(headers: Headers) -> dict[str, str]:
    from http.cookies import SimpleCookie

    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(headers.get("cookie", ""))
    except Exception:
        return {}
    return {key: morsel.value for key, morsel in jar.items()}
