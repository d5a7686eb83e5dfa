"""Links and GET forms of a page, with html.parser (no third-party parser)."""

import html.parser
import urllib.parse


class Form:
    def __init__(self, action, fields):
        self.action = action
        self.fields = fields  # input names, in page order

    def __repr__(self):
        return "Form(%r, %r)" % (self.action, self.fields)


class Page:
    def __init__(self):
        self.links = []
        self.forms = []


class _Parser(html.parser.HTMLParser):
    def __init__(self, base):
        super().__init__(convert_charrefs=True)
        self.base = base
        self.page = Page()
        self._form = None

    def _add_link(self, href):
        if not href or href.startswith(("javascript:", "mailto:", "#")):
            return
        url = urllib.parse.urldefrag(urllib.parse.urljoin(self.base, href))[0]
        if url not in self.page.links:
            self.page.links.append(url)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("a", "link"):
            self._add_link(a.get("href"))
        elif tag in ("img", "script", "iframe"):
            self._add_link(a.get("src"))
        elif tag == "form":
            method = (a.get("method") or "get").lower()
            if method == "get":
                action = urllib.parse.urljoin(self.base, a.get("action") or "")
                self._form = Form(action, [])
                self.page.forms.append(self._form)
        elif tag in ("input", "textarea", "select") and self._form is not None:
            name = a.get("name")
            if name and a.get("type", "text") not in ("submit", "button", "image", "file"):
                self._form.fields.append(name)

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None


def parse_page(text, base):
    p = _Parser(base)
    try:
        p.feed(text)
        p.close()
    except Exception:  # a broken page still yields what was parsed before the break
        pass
    return p.page
