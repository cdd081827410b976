"""The web UI's Starlette app: routes, sign-in, CSRF, error pages.

:func:`create_ui` builds it over an open store; :func:`beside_api` answers ``/api/...`` with the
management API and everything else with the UI (``serve --manage-address`` serves both on one
listener). Every page needs a signed-in token (its ``read`` scope is checked by the service on
each read); without one a page redirects to ``/signin``. Each request is handled in a worker
thread (the service is synchronous).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from package_storage import __version__
from package_storage.errors import (
    AuthenticationError,
    InvalidInputError,
    NotFoundError,
    PackageStorageError,
)
from package_storage.logs import get_logger
from package_storage.status import status_of
from package_storage.store.access import GuardedService
from package_storage.store.directory import Store
from package_storage.web import actions, pages
from package_storage.web.headers import ICON_POLICY, SecurityHeaders
from package_storage.web.session import (
    CSRF_COOKIE,
    CSRF_FIELD,
    SESSION_COOKIE,
    SESSION_SECONDS,
    csrf_ok,
    csrf_token,
    local_path,
    new_seed,
    same_origin,
)
from package_storage.web.templates import environment, render

log = get_logger("web")

MAX_FORM_FIELDS = 50
STALE_FORM = (
    "this form is out of date or came from another site (its CSRF token does not match):"
    " reload the page and send it again"
)
STATIC_FILES = {"ui.css": "text/css; charset=utf-8", "favicon.svg": "image/svg+xml"}


@dataclass
class Ctx:
    """One request: the token's service, this browser's CSRF value, the form sent."""

    request: Request
    g: GuardedService
    csrf: str
    form: dict[str, str]

    def arg(self, name: str, *, limit: int = 200) -> str:
        return pages.text_arg(self.request.query_params.get(name), name, limit=limit)

    def path(self, name: str) -> str:
        return str(self.request.path_params[name])


View = Callable[["Ui", Ctx], Response]


class Ui:
    """The state of one UI app: the store, the templates, the caches."""

    def __init__(self, store: Store, *, tls: bool) -> None:
        self.store = store
        self.tls = tls
        self.checker = store.service("web-ui")
        self.env = environment()
        self.caches = pages.Caches()

    # --- sessions --------------------------------------------------------------------------

    def guarded(self, secret: str) -> GuardedService:
        token = self.checker.authenticate(secret)
        return GuardedService(self.store.service(token.name), token)

    def set_cookie(self, response: Response, name: str, value: str, max_age: int) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path="/",
            secure=self.tls,
            httponly=True,
            samesite="strict",
        )

    # --- rendering -------------------------------------------------------------------------

    def html(
        self,
        template: str,
        values: dict[str, Any],
        *,
        status: int = 200,
        ctx: Ctx | None = None,
        csrf: str = "",
    ) -> HTMLResponse:
        common: dict[str, Any] = {
            "version": __version__,
            "csrf_field": CSRF_FIELD,
            "csrf": ctx.csrf if ctx else csrf,
            "who": ctx.g.token if ctx else None,
            "nav_stages": pages.promotion_order(ctx.g.stages()) if ctx else [],
            "path": ctx.request.url.path if ctx else "",
            "q": quote,
        }
        return HTMLResponse(render(self.env, template, {**common, **values}), status_code=status)

    def error_page(self, ctx: Ctx | None, exc: BaseException, csrf: str = "") -> HTMLResponse:
        status = status_of(exc)
        if status >= 500 or not isinstance(exc, PackageStorageError):
            log.error("web request failed: %s", exc, exc_info=exc)
            message, code = "internal server error", "internal"
        else:
            message, code = exc.message, exc.code
        return self.html(
            "error.html",
            {"status": status, "code": code, "message": message},
            status=status if status >= 400 else 500,
            ctx=ctx,
            csrf=csrf,
        )

    # --- the request cycle -----------------------------------------------------------------

    async def handle(self, request: Request, view: View) -> Response:
        form: dict[str, str] = {}
        if request.method == "POST":
            try:
                data: FormData = await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)
            except Exception:  # a malformed body: one clear answer, never a 500
                return await run_in_threadpool(
                    self.error_page, None, InvalidInputError("the form could not be read")
                )
            form = {k: v for k, v in data.items() if isinstance(v, str)}
        return await run_in_threadpool(self._handle, request, form, view)

    def _handle(self, request: Request, form: dict[str, str], view: View) -> Response:
        seed = request.cookies.get(CSRF_COOKIE)
        fresh_seed = None
        if not seed:
            seed = fresh_seed = new_seed()
        secret = request.cookies.get(SESSION_COOKIE) or None
        response = self._respond(request, form, view, seed, secret)
        if fresh_seed is not None and not any(
            k == b"set-cookie" and v.startswith(CSRF_COOKIE.encode() + b"=")
            for k, v in response.raw_headers
        ):
            self.set_cookie(response, CSRF_COOKIE, fresh_seed, SESSION_SECONDS)
        return response

    def _respond(
        self, request: Request, form: dict[str, str], view: View, seed: str, secret: str | None
    ) -> Response:
        if request.method == "POST" and not self._form_ok(request, form, seed, secret):
            return self.html(
                "error.html",
                {"status": 403, "code": "csrf", "message": STALE_FORM},
                status=403,
            )
        if secret is None:
            return self._to_signin(request)
        try:
            g = self.guarded(secret)
        except AuthenticationError as exc:
            response = self._to_signin(request, exc.message)
            response.delete_cookie(SESSION_COOKIE, path="/")
            return response
        ctx = Ctx(request, g, csrf_token(seed, secret), form)
        try:
            return view(self, ctx)
        except PackageStorageError as exc:
            return self.error_page(ctx, exc)
        except Exception as exc:
            return self.error_page(ctx, exc)

    def _form_ok(
        self, request: Request, form: dict[str, str], seed: str, secret: str | None
    ) -> bool:
        origin = request.headers.get("origin")
        if not same_origin(origin, request.url.scheme, request.headers.get("host")):
            return False
        if request.headers.get("sec-fetch-site") not in (None, "same-origin", "none"):
            return False
        return csrf_ok(seed, secret, form.get(CSRF_FIELD))

    def _to_signin(self, request: Request, message: str = "") -> Response:
        if request.method != "GET":
            return RedirectResponse("/signin", status_code=303)
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        url = "/signin" if target == "/" else f"/signin?next={quote(target, safe='')}"
        if message:
            url += ("&" if "?" in url else "?") + "expired=1"
        return RedirectResponse(url, status_code=303)


# --- sign-in ---------------------------------------------------------------------------------


async def signin_page(request: Request) -> Response:
    ui: Ui = request.app.state.ui
    return await run_in_threadpool(_signin_page, ui, request)


def _signin_page(ui: Ui, request: Request, *, message: str = "", status: int = 200) -> Response:
    seed = request.cookies.get(CSRF_COOKIE) or new_seed()
    nxt = local_path(request.query_params.get("next"))
    if not message and request.query_params.get("expired"):
        message = "your token no longer signs in (expired or revoked): sign in again"
    response = ui.html(
        "signin.html",
        {"next": nxt, "message": message},
        status=status,
        csrf=csrf_token(seed, None),
    )
    if seed != request.cookies.get(CSRF_COOKIE):
        ui.set_cookie(response, CSRF_COOKIE, seed, SESSION_SECONDS)
    return response


async def signin(request: Request) -> Response:
    ui: Ui = request.app.state.ui
    try:
        data = await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)
    except Exception:
        return await run_in_threadpool(
            _signin_page, ui, request, message="the form could not be read", status=400
        )
    form = {k: v for k, v in data.items() if isinstance(v, str)}
    return await run_in_threadpool(_signin, ui, request, form)


def _signin(ui: Ui, request: Request, form: dict[str, str]) -> Response:
    seed = request.cookies.get(CSRF_COOKIE) or ""
    if not ui._form_ok(request, form, seed, None):
        return _signin_page(ui, request, message=STALE_FORM, status=403)
    secret = form.get("token", "").strip()
    try:
        if not secret:
            raise AuthenticationError("enter a token (package-storage tokens create)")
        ui.guarded(secret)
    except AuthenticationError as exc:
        return _signin_page(ui, request, message=f"sign-in refused: {exc.message}", status=401)
    response = RedirectResponse(local_path(form.get("next")), status_code=303)
    ui.set_cookie(response, SESSION_COOKIE, secret, SESSION_SECONDS)
    ui.set_cookie(response, CSRF_COOKIE, new_seed(), SESSION_SECONDS)  # a new seed per sign-in
    return response


def signout(ui: Ui, ctx: Ctx) -> Response:
    response = RedirectResponse("/signin", status_code=303)
    response.delete_cookie(
        SESSION_COOKIE, path="/", secure=ui.tls, httponly=True, samesite="strict"
    )
    return response


# --- pages -----------------------------------------------------------------------------------


def overview(ui: Ui, ctx: Ctx) -> Response:
    return ui.html("overview.html", pages.overview(ctx.g, ui.caches), ctx=ctx)


def stage(ui: Ui, ctx: Ctx) -> Response:
    values = pages.stage_page(
        ctx.g,
        ui.caches,
        ctx.path("stage"),
        ctx.arg("q"),
        ctx.arg("category"),
        pages.page_arg(ctx.request.query_params.get("page")),
    )
    return ui.html("stage.html", values, ctx=ctx)


def package(ui: Ui, ctx: Ctx) -> Response:
    values = pages.package_page(ctx.g, ui.caches, ctx.path("name"), ctx.arg("version") or None)
    return ui.html("package.html", values, ctx=ctx)


def icon(ui: Ui, ctx: Ctx) -> Response:
    docs = ui.caches.package_docs(ctx.g, ctx.path("digest"))
    if docs.icon is None:
        raise NotFoundError("this package version has no icon")
    return Response(
        docs.icon.data,
        media_type=docs.icon.content_type,
        headers={
            "content-security-policy": ICON_POLICY,
            "cache-control": "private, max-age=86400, immutable",
        },
    )


def diff(ui: Ui, ctx: Ctx) -> Response:
    a, b = ctx.arg("a"), ctx.arg("b")
    graph = ctx.g.stages()
    if not a and not b:
        default = pages.default_preview(graph)
        values: dict[str, Any] = {
            "a": "",
            "b": "",
            "parts": [],
            "same": False,
            "target": None,
            "stages": pages.promotion_order(graph),
            "default": default,
            "limit": pages.DIFF_ROWS,
            "changelogs": pages.DIFF_CHANGELOGS,
        }
        return ui.html("diff.html", values, ctx=ctx)
    values = pages.diff_page(ctx.g, ui.caches, a, b)
    return ui.html("diff.html", {**values, "default": None}, ctx=ctx)


def history(ui: Ui, ctx: Ctx) -> Response:
    values = pages.history_page(
        ctx.g,
        ctx.arg("stage"),
        ctx.arg("package"),
        ctx.arg("actor"),
        pages.page_arg(ctx.request.query_params.get("page")),
    )
    return ui.html("history.html", values, ctx=ctx)


def event(ui: Ui, ctx: Ctx) -> Response:
    text = ctx.path("event")
    if not text.isdigit():
        raise InvalidInputError(f"event {text!r}: an event number")
    return ui.html("event.html", pages.event_page(ctx.g, int(text)), ctx=ctx)


def revisions(ui: Ui, ctx: Ctx) -> Response:
    values = pages.revisions_page(
        ctx.g, ui.caches, ctx.path("dist"), pages.page_arg(ctx.request.query_params.get("page"))
    )
    return ui.html("revisions.html", values, ctx=ctx)


def revision(ui: Ui, ctx: Ctx) -> Response:
    values = pages.revision_page(ctx.g, ctx.path("dist"), ctx.path("ref"))
    return ui.html("revision.html", values, ctx=ctx)


# --- actions ---------------------------------------------------------------------------------


def _action(
    preview: Callable[[Ctx], actions.Confirmation], run: Callable[[Ctx, str], actions.Done]
) -> View:
    """A two-step action: the confirmation page, then (``confirm``) the service's call."""

    def view(ui: Ui, ctx: Ctx) -> Response:
        reason = pages.text_arg(ctx.form.get("reason"), "Reason", limit=2000)
        if ctx.form.get("confirm") != "1":
            return ui.html("confirm.html", {"c": preview(ctx)}, ctx=ctx)
        try:
            done = run(ctx, reason)
        except PackageStorageError as exc:
            try:
                confirmation = preview(ctx)
            except PackageStorageError:
                return ui.error_page(ctx, exc)
            confirmation.error = exc.message
            confirmation.reason = reason
            return ui.html("confirm.html", {"c": confirmation}, status=status_of(exc), ctx=ctx)
        return ui.html("done.html", {"d": done}, ctx=ctx)

    return view


promote = _action(
    lambda c: actions.promote_preview(
        c.g, c.path("name"), c.path("version"), c.form.get("to", ""), c.form.get("from") or None
    ),
    lambda c, reason: actions.promote(c.g, c.path("name"), c.path("version"), c.form, reason),
)
remove = _action(
    lambda c: actions.remove_preview(
        c.g, c.path("name"), c.path("version"), c.form.get("stage", "")
    ),
    lambda c, reason: actions.remove(c.g, c.path("name"), c.path("version"), c.form, reason),
)
tag = _action(
    lambda c: actions.tag_preview(c.g, c.path("dist"), c.form),
    lambda c, reason: actions.tag(c.g, c.path("dist"), c.form, reason),
)
rollback = _action(
    lambda c: actions.rollback_preview(c.g, c.path("dist"), c.form),
    lambda c, reason: actions.rollback(c.g, c.path("dist"), c.form, reason),
)


# --- the app ---------------------------------------------------------------------------------


async def static(request: Request) -> Response:
    name = request.path_params["file"]
    media = STATIC_FILES.get(name)
    if media is None:
        raise HTTPException(404)
    data = resources.files("package_storage.web").joinpath("static", name).read_bytes()
    return Response(data, media_type=media, headers={"cache-control": "public, max-age=3600"})


def _route(path: str, view: View, methods: tuple[str, ...] = ("GET",)) -> Route:
    async def endpoint(request: Request) -> Response:
        ui: Ui = request.app.state.ui
        return await ui.handle(request, view)

    return Route(path, endpoint, methods=list(methods))


def create_ui(store: Store, *, tls: bool = False) -> Starlette:
    """The UI over ``store``; ``tls``: it is served over HTTPS (cookies get ``Secure``)."""
    post = ("POST",)
    routes = [
        Route("/signin", signin_page, methods=["GET"]),
        Route("/signin", signin, methods=["POST"]),
        Route("/static/{file}", static, methods=["GET"]),
        _route("/signout", signout, post),
        _route("/", overview),
        _route("/stages/{stage}", stage),
        _route("/packages/{name}", package),
        _route("/packages/{name}/{version}/promote", promote, post),
        _route("/packages/{name}/{version}/remove", remove, post),
        _route("/artifacts/{digest}/icon", icon),
        _route("/diff", diff),
        _route("/history", history),
        _route("/events/{event}", event),
        _route("/distributions/{dist}", revisions),
        _route("/distributions/{dist}/revisions/{ref}", revision),
        _route("/distributions/{dist}/tag", tag, post),
        _route("/distributions/{dist}/rollback", rollback, post),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        ui: Ui = request.app.state.ui
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        text = {404: "no such page", 405: "method not allowed"}.get(status, "error")
        return ui.html(
            "error.html",
            {
                "status": status,
                "code": "not_found" if status == 404 else "http_error",
                "message": text,
            },
            status=status,
        )

    app = Starlette(routes=routes, exception_handlers={HTTPException: not_found})
    app.state.ui = Ui(store, tls=tls)
    app.add_middleware(SecurityHeaders, tls=tls)
    return app


def beside_api(ui: ASGIApp, api: ASGIApp, prefix: str = "/api/") -> ASGIApp:
    """One ASGI app: paths under ``prefix`` (and the lifespan) to ``api``, the rest to ``ui``."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan" or str(scope.get("path", "")).startswith(prefix):
            await api(scope, receive, send)
        else:
            await ui(scope, receive, send)

    return app


__all__ = ["beside_api", "create_ui"]
