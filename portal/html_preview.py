"""Showing HTML someone else wrote (a template, a logged email) inside the portal.

The HTML goes into <iframe sandbox="" srcdoc="...">: the empty sandbox runs no scripts, submits
no forms and gives the document an opaque origin (no access to the portal's cookies or DOM).
The policy below additionally stops the document from loading anything but images, styles and
fonts, so it cannot, for example, open connections from the viewer's browser."""

CONTENT_POLICY = ("default-src 'none'; img-src https: http: data: cid:; style-src 'unsafe-inline' https:; "
                  "font-src https: data:; form-action 'none'")


def srcdoc(html):
    """The srcdoc value for `html` (autoescaping turns it into a safe attribute value)."""
    if not html:
        return ""
    return f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_POLICY}"><base target="_blank">{html}'
