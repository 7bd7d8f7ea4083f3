"""Content-Security-Policy of the portal's pages: a second line behind autoescaping.

Script runs only from the portal's own static files (no inline script, no eval), nothing embeds
the portal, and forms post only to it. A sandboxed srcdoc preview (html_preview.py) inherits
this policy on top of its own, so images, styles and fonts of an email may come from the web
(inline styles too: emails and the portal's templates use them)."""

POLICY = ("default-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
          "frame-ancestors 'none'; img-src 'self' data: https: http:; style-src 'self' 'unsafe-inline' https:; "
          "font-src 'self' data: https:")


class PortalContentSecurityPolicy:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        if match is not None and match.app_name == "portal":
            response.setdefault("Content-Security-Policy", POLICY)
        return response
