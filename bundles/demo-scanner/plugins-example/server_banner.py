"""Example external plugin: a Server header that gives away a version.

Copy it into a folder and pass that folder to the scanner (s2n-oci mounts it
at /plugins): `runner.py scan -u URL -p server_banner`.
"""

import re

NAME = "server_banner"

VERSIONED = re.compile(r"[A-Za-z][\w.-]*/\d+(\.\d+)*")


def check(ctx):
    r = ctx.get(ctx.target)
    out = []
    for header in ("Server", "X-Powered-By"):
        value = r.headers.get(header)
        if value and VERSIONED.search(value):
            out.append(ctx.finding("%s header discloses a version" % header, "low", r.url, "%s: %s" % (header, value)))
    return out
