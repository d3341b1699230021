"""Serves the dashboard's index.html for every non-API path (client-side routing); its
hashed assets are served by WhiteNoise from frontend/dist."""

from django.conf import settings
from django.http import HttpResponse
from django.views.decorators.csrf import ensure_csrf_cookie


@ensure_csrf_cookie
def dashboard(request, *args, **kwargs):
    if request.path.startswith("/assets/"):
        # A hashed asset that does not exist (e.g. an old page after a rebuild) is a 404, not
        # the app's HTML under a .js name.
        return HttpResponse("Not found", status=404, content_type="text/plain")
    index = settings.HUB_FRONTEND_DIST / "index.html"
    if not index.exists():
        return HttpResponse(
            "<!doctype html><title>MoE Hub</title><h1>MoE Hub</h1><p>The dashboard is not built: run "
            "<code>make frontend</code> (or <code>make run</code>). The API is at <a href='/api/docs'>/api/docs</a>.</p>",
            status=200,
        )
    resp = HttpResponse(index.read_bytes(), content_type="text/html; charset=utf-8")
    resp["Cache-Control"] = "no-cache"
    return resp
