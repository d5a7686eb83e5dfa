"""HTTP for the scanner: urllib with the environment's proxies and CA bundle.

urllib reads HTTP(S)_PROXY / NO_PROXY by itself; the CA bundle comes from
SSL_CERT_FILE or REQUESTS_CA_BUNDLE (what Python tools built on requests
honour), so a host's internal CA works without changing the image.
"""

import os
import ssl
import urllib.error
import urllib.parse
import urllib.request

USER_AGENT = "s2n-demo/0.1 (+https://github.com/s2n)"
MAX_BODY = 2 * 1024 * 1024


class Unreachable(Exception):
    """The target did not answer at all (refused, DNS, TLS handshake, timeout)."""


class Response:
    def __init__(self, url, status, headers, body):
        self.url = url
        self.status = status
        self.headers = headers  # email.message.Message: case-insensitive .get()
        self.body = body

    @property
    def text(self):
        charset = self.headers.get_content_charset() or "utf-8"
        try:
            return self.body.decode(charset, "replace")
        except LookupError:
            return self.body.decode("utf-8", "replace")


def ca_bundle():
    for var in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
        v = os.environ.get(var)
        if v:
            return v
    return None


class Client:
    def __init__(self, timeout=10.0, insecure=False, log=None):
        self.timeout = timeout
        self.log = log
        if insecure:
            ctx = ssl._create_unverified_context()
        else:
            ctx = ssl.create_default_context(cafile=ca_bundle())
        # ProxyHandler() without arguments takes the proxies from the environment.
        self.opener = urllib.request.build_opener(
            urllib.request.ProxyHandler(), urllib.request.HTTPSHandler(context=ctx)
        )

    @staticmethod
    def resolve(base, path_or_url):
        return urllib.parse.urljoin(base, path_or_url)

    @staticmethod
    def same_origin(a, b):
        pa, pb = urllib.parse.urlsplit(a), urllib.parse.urlsplit(b)
        return (pa.scheme, pa.netloc) == (pb.scheme, pb.netloc)

    def get(self, url, params=None):
        if params:
            parts = urllib.parse.urlsplit(url)
            query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
            query = [(k, v) for k, v in query if k not in params] + list(params.items())
            url = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))
        req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept": "*/*"})
        if self.log:
            self.log.debug("GET %s", url)
        try:
            with self.opener.open(req, timeout=self.timeout) as r:
                return Response(r.geturl(), r.status, r.headers, r.read(MAX_BODY))
        except urllib.error.HTTPError as e:
            # A 404 or 500 is an answer: plugins look at it like any other.
            with e:
                return Response(e.geturl() or url, e.code, e.headers, e.read(MAX_BODY))
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", e)
            raise Unreachable("GET %s: %s" % (url, reason)) from e
