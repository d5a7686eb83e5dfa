"""s2n-demo: a small s2n-compatible web scanner (the s2n-oci demo image).

    runner.py scan -u URL [-p PLUGIN]... [--output FILE] [--timeout S] [--log-level L] [--insecure]
    runner.py plugins                       list the plugins -p accepts

Without -p every built-in plugin runs. -p NAME picks a built-in plugin or
$S2N_PLUGIN_DIR/NAME.py (see s2n_sdk for the plugin API).

Report: JSON in $S2N_RESULTS_DIR/report.json and in --output FILE. stdout
gets one summary line, or the report itself when there is nowhere to write
it (no $S2N_RESULTS_DIR, no --output). Logs go to stderr.

Exit status: 0 the scan ran (findings or not), 1 scanner failure (e.g. the
report cannot be written), 2 usage error (bad arguments, unknown plugin),
3 target unreachable.
"""

import argparse
import datetime
import importlib.util
import json
import logging
import os
import ssl
import sys
import urllib.parse

sys.dont_write_bytecode = True  # the app and plugin dirs are read-only in prod

try:
    import s2n_sdk
except ImportError:  # run from the source tree: the library sits next to the app
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
    import s2n_sdk

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
BUILTIN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "builtin")
BUILTINS = ("security_headers", "directory_listing", "reflected_param")
REPORT_FILE = "report.json"

log = logging.getLogger("s2n")


class UsageError(Exception):
    pass


def now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def plugin_dir():
    return os.environ.get("S2N_PLUGIN_DIR") or None


def external_plugins():
    d = plugin_dir()
    if not d or not os.path.isdir(d):
        return []
    return sorted(f[:-3] for f in os.listdir(d) if f.endswith(".py") and not f.startswith(("_", ".")))


def load_plugin(name):
    if name in BUILTINS:
        path = os.path.join(BUILTIN_DIR, name + ".py")
    else:
        d = plugin_dir()
        path = os.path.join(d, name + ".py") if d else None
        if not name.isidentifier() or path is None or not os.path.isfile(path):
            where = "$S2N_PLUGIN_DIR (%s)" % d if d else "$S2N_PLUGIN_DIR (not set)"
            raise UsageError(
                "unknown plugin %r: not built in (%s) and no %s.py in %s"
                % (name, ", ".join(BUILTINS), name, where)
            )
    spec = importlib.util.spec_from_file_location("s2n_plugin_" + name, path)
    mod = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(mod)
    except Exception as e:
        raise UsageError("load plugin %s from %s: %s: %s" % (name, path, type(e).__name__, e))
    if getattr(mod, "NAME", None) != name or not callable(getattr(mod, "check", None)):
        raise UsageError("load plugin %s from %s: it must define NAME = %r and def check(ctx)" % (name, path, name))
    return mod


def write_report(report, paths):
    data = json.dumps(report, indent=2) + "\n"
    for p in paths:
        tmp = p + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(data)
        os.replace(tmp, p)


def summary(report, where):
    counts = {s: 0 for s in ("high", "medium", "low")}
    for f in report["findings"]:
        counts[f["severity"]] = counts.get(f["severity"], 0) + 1
    n = len(report["findings"])
    return "s2n-demo: %d finding%s (%s) from %d plugin%s on %s; report: %s" % (
        n, "" if n == 1 else "s", ", ".join("%d %s" % (counts[s], s) for s in counts),
        len(report["plugins"]), "" if len(report["plugins"]) == 1 else "s", report["target"], ", ".join(where),
    )


def scan(args):
    parts = urllib.parse.urlsplit(args.url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError("scan: --url must be an http:// or https:// URL, got %r" % args.url)
    names = args.plugins or list(BUILTINS)
    plugins = [load_plugin(n) for n in dict.fromkeys(names)]  # unknown names fail before any request

    results_dir = os.environ.get("S2N_RESULTS_DIR") or None
    outputs = [os.path.join(results_dir, REPORT_FILE)] if results_dir else []
    if args.output:
        outputs.append(args.output)

    report = {
        "scanner": "s2n-demo",
        "version": s2n_sdk.__version__,
        "target": args.url,
        "started": now(),
        "finished": None,
        "plugins": [p.NAME for p in plugins],
        "findings": [],
        "errors": [],
    }
    try:
        client = s2n_sdk.Client(timeout=args.timeout, insecure=args.insecure, log=log)
    except (OSError, ssl.SSLError) as e:
        raise UsageError("read CA bundle %s: %s" % (s2n_sdk.http.ca_bundle(), e))
    status = EXIT_OK
    try:
        first = client.get(args.url)
        log.info("target %s answered %d", args.url, first.status)
    except s2n_sdk.Unreachable as e:
        log.error("target unreachable: %s", e)
        report["errors"].append({"plugin": "", "message": "target unreachable: %s" % e})
        status = EXIT_UNREACHABLE
        plugins = []

    for p in plugins:
        ctx = s2n_sdk.Context(args.url, client, p.NAME)
        try:
            found = p.check(ctx) or []
            for f in found:
                f.setdefault("plugin", p.NAME)
            report["findings"].extend(found)
            log.info("plugin %s: %d finding%s", p.NAME, len(found), "" if len(found) == 1 else "s")
        except Exception as e:  # one broken plugin must not lose the others' findings
            log.error("plugin %s failed: %s: %s", p.NAME, type(e).__name__, e)
            log.debug("plugin %s traceback", p.NAME, exc_info=True)
            report["errors"].append({"plugin": p.NAME, "message": "%s: %s" % (type(e).__name__, e)})

    report["finished"] = now()
    try:
        write_report(report, outputs)
    except OSError as e:
        log.error("write report: %s", e)
        print(json.dumps(report, indent=2))
        return EXIT_ERROR
    if outputs:
        print(summary(report, outputs))
    else:
        print(json.dumps(report, indent=2))
    return status


def list_plugins(_args):
    for n in BUILTINS:
        print("%s\tbuilt-in" % n)
    for n in external_plugins():
        if n not in BUILTINS:
            print("%s\t%s" % (n, os.path.join(plugin_dir(), n + ".py")))
    return EXIT_OK


def parser():
    p = argparse.ArgumentParser(prog="s2n", description="s2n-demo web scanner (s2n-compatible command line)")
    p.add_argument("--version", action="version", version="s2n-demo " + s2n_sdk.__version__)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    s = sub.add_parser("scan", help="scan a URL")
    s.add_argument("-u", "--url", required=True, help="target URL (http or https)")
    s.add_argument("-p", "--plugin", dest="plugins", action="append", metavar="PLUGIN",
                   help="run this plugin (repeatable; default: all built-in ones)")
    s.add_argument("-o", "--output", help="also write the JSON report to this file")
    s.add_argument("--timeout", type=float, default=10.0, help="seconds per request (default 10)")
    s.add_argument("--log-level", default=os.environ.get("S2N_LOG_LEVEL", "info"),
                   choices=("debug", "info", "warning", "error"), help="stderr log level (default $S2N_LOG_LEVEL or info)")
    s.add_argument("-k", "--insecure", action="store_true", help="do not verify TLS certificates")
    s.set_defaults(func=scan)
    lp = sub.add_parser("plugins", help="list the plugins -p accepts")
    lp.set_defaults(func=list_plugins)
    return p


def main(argv=None):
    p = parser()
    args = p.parse_args(argv)  # exits 2 on bad usage
    if not getattr(args, "func", None):
        p.print_help(sys.stderr)
        return EXIT_USAGE
    level = getattr(args, "log_level", None) or os.environ.get("S2N_LOG_LEVEL", "info")
    if level not in ("debug", "info", "warning", "error"):
        level = "info"
    logging.basicConfig(stream=sys.stderr, level=level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except UsageError as e:
        print("s2n: error: %s" % e, file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
