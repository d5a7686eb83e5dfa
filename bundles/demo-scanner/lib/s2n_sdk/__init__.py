"""s2n_sdk: the small library the demo scanner and its plugins share.

Shipped in the image's dependency layer (site-packages), separate from the
app, the way a real scanner's dependencies are. Standard library only.

Plugin API (what a plugin file in $S2N_PLUGIN_DIR sees):

    NAME = "my_check"              # must equal the file name without .py

    def check(ctx):                # -> list of findings
        r = ctx.get("/")           # Response: .status .headers .text .url
        if "X-Debug" in r.headers:
            return [ctx.finding("debug header present", "low", r.url, r.headers["X-Debug"])]
        return []

ctx.target is the scanned URL, ctx.get(path_or_url, params=None) fetches
(relative to the target; HTTP errors are responses, not exceptions),
ctx.links() lists same-origin links of the target page, ctx.forms() its GET
forms, ctx.log is a logging.Logger, ctx.finding(title, severity, url,
evidence) builds a finding (severity: low, medium or high).
"""

import logging

from .html import Form, parse_page
from .http import Client, Response, Unreachable

__version__ = "0.1.0"

SEVERITIES = ("low", "medium", "high")

__all__ = ["Context", "Client", "Response", "Unreachable", "Form", "SEVERITIES", "__version__"]


class Context:
    """What a plugin's check(ctx) gets: the target, a client, helpers."""

    def __init__(self, target, client, plugin, log=None):
        self.target = target
        self.client = client
        self.plugin = plugin
        self.log = log or logging.getLogger("s2n.plugin." + plugin)
        self._page = None

    def get(self, path_or_url, params=None):
        return self.client.get(self.client.resolve(self.target, path_or_url), params)

    def _parsed(self):
        if self._page is None:
            r = self.get(self.target)
            self._page = parse_page(r.text, r.url)
        return self._page

    def links(self):
        """Same-origin absolute URLs linked from the target page, in page order, without duplicates."""
        return [u for u in self._parsed().links if self.client.same_origin(self.target, u)]

    def forms(self):
        """GET forms of the target page (action made absolute, same origin only)."""
        return [f for f in self._parsed().forms if self.client.same_origin(self.target, f.action)]

    def finding(self, title, severity="low", url=None, evidence=""):
        if severity not in SEVERITIES:
            raise ValueError("severity must be one of %s, got %r" % (", ".join(SEVERITIES), severity))
        return {
            "plugin": self.plugin,
            "severity": severity,
            "title": str(title),
            "url": url or self.target,
            "evidence": str(evidence)[:500],
        }
