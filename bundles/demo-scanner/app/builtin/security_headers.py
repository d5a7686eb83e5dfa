"""Missing HTTP security headers on the target page."""

NAME = "security_headers"


def check(ctx):
    r = ctx.get(ctx.target)
    h = r.headers
    out = []

    def missing(header, severity, why):
        out.append(ctx.finding("missing %s header" % header, severity, r.url, why))

    csp = h.get("Content-Security-Policy")
    if not csp:
        missing("Content-Security-Policy", "medium", "no Content-Security-Policy: injected scripts run unrestricted")
    # CSP frame-ancestors does X-Frame-Options' job in current browsers.
    if not h.get("X-Frame-Options") and not (csp and "frame-ancestors" in csp):
        missing("X-Frame-Options", "medium", "no X-Frame-Options nor CSP frame-ancestors: the page can be framed (clickjacking)")
    if (h.get("X-Content-Type-Options") or "").strip().lower() != "nosniff":
        got = h.get("X-Content-Type-Options")
        missing("X-Content-Type-Options", "low", "X-Content-Type-Options is %r, not nosniff" % got if got else "no X-Content-Type-Options: nosniff")
    if r.url.startswith("https:") and not h.get("Strict-Transport-Security"):
        missing("Strict-Transport-Security", "medium", "HTTPS response without Strict-Transport-Security")
    return out
