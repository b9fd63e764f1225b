"""The console at ``/console``: one static page (HTML, an ES module, a stylesheet) shipped in the
package and served by the gateway itself, so it needs no build step and works offline.

It talks to the gateway's public API with the key the user pastes in, as any client would; nothing
here has access to the gateway's state. Left out of the OpenAPI document.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

#: the page and its assets inside the installed package
STATIC = Path(str(resources.files("imagegate") / "console"))
ASSETS = "/console/assets"
#: the page loads only from this server; pictures may come from a storage host (S3 presigned links)
HEADERS = {
    "content-security-policy": "default-src 'self'; img-src * data: blob:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    "cache-control": "no-cache",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
}


def install_console(app: FastAPI) -> None:
    app.mount(ASSETS, StaticFiles(directory=STATIC), name="console-assets")

    @app.get("/console", include_in_schema=False)
    async def console_page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8", headers=HEADERS)

    @app.get("/console/", include_in_schema=False)
    async def console_slash() -> RedirectResponse:
        return RedirectResponse("../console", status_code=308)
