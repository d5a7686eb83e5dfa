"""Query parameters whose value comes back unescaped in the page (reflected XSS)."""

import secrets
import urllib.parse

NAME = "reflected_param"

MAX_PROBES = 30


def candidates(ctx):
    """(url without query, parameter name) pairs from links with a query and GET forms."""
    seen = []
    for url in ctx.links():
        parts = urllib.parse.urlsplit(url)
        base = urllib.parse.urlunsplit(parts._replace(query=""))
        for name, _ in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
            if (base, name) not in seen:
                seen.append((base, name))
    for form in ctx.forms():
        base = urllib.parse.urlunsplit(urllib.parse.urlsplit(form.action)._replace(query=""))
        for name in form.fields:
            if (base, name) not in seen:
                seen.append((base, name))
    return seen[:MAX_PROBES]


def check(ctx):
    out = []
    for base, name in candidates(ctx):
        token = "s2n" + secrets.token_hex(4)
        probe = '<%s x="1">' % token
        r = ctx.get(base, {name: probe})
        if probe in r.text:
            out.append(ctx.finding(
                "parameter %r reflected unescaped" % name, "high", r.url,
                "sent %s, the response contains it verbatim" % probe,
            ))
        elif token in r.text:
            ctx.log.debug("%s reflects %s but escaped", base, name)
    return out
