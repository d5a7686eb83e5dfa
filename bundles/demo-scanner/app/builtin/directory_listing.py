"""Directory listings ("Index of /...") on directories the target links to."""

import re
import urllib.parse

NAME = "directory_listing"

COMMON_DIRS = ("/files/", "/uploads/", "/backup/", "/static/", "/images/")
MAX_DIRS = 25
LISTING = re.compile(r"<title>\s*Index of /|<h1>\s*Index of /", re.IGNORECASE)


def candidate_dirs(ctx):
    dirs = []
    for url in ctx.links():
        path = urllib.parse.urlsplit(url).path or "/"
        # Every parent directory of a linked path: /files/a/b.pdf -> /files/, /files/a/
        parts = path.split("/")[1:-1]
        for i in range(1, len(parts) + 1):
            d = "/" + "/".join(parts[:i]) + "/"
            if d not in dirs:
                dirs.append(d)
    for d in COMMON_DIRS:
        if d not in dirs:
            dirs.append(d)
    return dirs[:MAX_DIRS]


def check(ctx):
    out = []
    for d in candidate_dirs(ctx):
        r = ctx.get(d)
        if r.status == 200 and LISTING.search(r.text):
            m = re.search(r"Index of [^<]*", r.text)
            out.append(ctx.finding("directory listing enabled", "medium", r.url, m.group(0) if m else "Index of"))
    return out
