"""Private: Python read as Python: an ``ast`` walk that finds what a script can do (pure).

Calls are resolved through imports and simple assignments (``import socket as s``,
``from urllib.request import urlopen``, ``__import__('os')``), values through a small taint
flow (a key read from ``os.environ`` stays a key through names, f-strings, ``+``, ``%``,
``.format``, ``.encode``). Judged:

- sockets and HTTP clients (``socket.connect``, ``create_connection``, ``urlopen``,
  ``requests``/``httpx``, ``http.client``, DNS ``gethostbyname``): the host must be
  allowlisted; a key may travel only in an ``Authorization`` header to its own service;
- ``exec``/``eval``/``compile`` of fetched or decoded data (``b64decode``, ``bytes.fromhex``,
  ``zlib.decompress``, ``marshal.loads``, a response body); a literal string is read again;
- ``os.system``, ``os.popen``, ``subprocess.*`` and ``pty.spawn``: the command line goes to the
  shell analyser (a list becomes argv); a shell spawned with a socket is a reverse shell;
- the whole ``os.environ`` (a dump), files opened for writing at persistence paths, key files
  read, ``shutil.rmtree`` of home or root.

A file that does not parse is a finding (fail closed).
"""

from __future__ import annotations

import ast
from typing import Final

from impromptu_ops.gate.capabilities import (
    KEY_FILES,
    PERSIST_PATHS,
    CommandJudge,
    Val,
    home_path,
    join,
)

_NET_CALLS: Final = {
    "urllib.request.urlopen": "url", "urllib.request.urlretrieve": "url",
    "urllib.request.Request": "url", "urllib2.urlopen": "url", "urlopen": "url",
    "requests.get": "url", "requests.post": "url", "requests.put": "url",
    "requests.patch": "url", "requests.delete": "url", "requests.head": "url",
    "requests.request": "url2", "httpx.get": "url", "httpx.post": "url", "httpx.put": "url",
    "httpx.request": "url2", "httpx.stream": "url2", "aiohttp.request": "url2",
    "http.client.HTTPConnection": "host", "http.client.HTTPSConnection": "host",
    "ftplib.FTP": "host", "smtplib.SMTP": "host", "smtplib.SMTP_SSL": "host",
    "telnetlib.Telnet": "host", "socket.create_connection": "addr",
    "socket.gethostbyname": "host", "socket.getaddrinfo": "host",
    "socket.gethostbyname_ex": "host", "paramiko.SSHClient.connect": "host",
    "websocket.create_connection": "url", "urllib3.PoolManager.request": "url2",
}
_DECODERS: Final = ("b64decode", "a2b_base64", "decodebytes", "b32decode", "b85decode",
                    "a85decode", "fromhex", "unhexlify", "a2b_hex", "decompress", "loads",
                    "codecs.decode", "rot13", "urlsafe_b64decode", "standard_b64decode")
_FETCH_ATTRS: Final = ("read", "text", "content", "json", "recv", "makefile", "iter_content")


class PythonAnalyser(ast.NodeVisitor):
    def __init__(self, judge: CommandJudge, base_line: int, depth: int) -> None:
        self.judge = judge
        self.base = base_line
        self.depth = depth
        self.aliases: dict[str, str] = {}
        self.vals: dict[str, Val] = {}
        self.sockets: set[str] = set()
        self.has_socket = False

    def line(self, node: ast.AST) -> int:
        return self.base if self.depth else self.base + getattr(node, "lineno", 1) - 1

    # --- names ---------------------------------------------------------------------------

    def dotted(self, node: ast.expr) -> str:
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id, node.id)
        if isinstance(node, ast.Attribute):
            return f"{self.dotted(node.value)}.{node.attr}"
        if isinstance(node, ast.Call):
            fn = self.dotted(node.func)
            if fn in ("getattr", "builtins.getattr") and len(node.args) >= 2:
                attr = self.value(node.args[1])
                if not attr.dynamic:
                    return f"{self.dotted(node.args[0])}.{attr.text}"
            if fn in ("__import__", "importlib.import_module") and node.args:
                mod = self.value(node.args[0])
                if not mod.dynamic:
                    return mod.text
            return fn + "()"
        if isinstance(node, ast.Subscript):
            return self.dotted(node.value) + "[]"
        return "?"

    def visit_Import(self, node: ast.Import) -> None:
        for a in node.names:
            self.aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else \
                a.name.split(".")[0]

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for a in node.names:
            self.aliases[a.asname or a.name] = f"{node.module or ''}.{a.name}".lstrip(".")

    # --- values --------------------------------------------------------------------------

    def value(self, node: ast.expr | None) -> Val:
        if node is None:
            return Val("")
        if isinstance(node, ast.Constant):
            v = node.value
            if isinstance(v, bytes):
                return Val(v.decode("utf-8", "replace"))
            return Val(str(v))
        if isinstance(node, ast.Name):
            return self.vals.get(node.id, Val(f"⟨{node.id}⟩", frozenset({"dynamic"})))
        if isinstance(node, ast.JoinedStr):
            return join(self.value(v) for v in node.values)
        if isinstance(node, ast.FormattedValue):
            return self.value(node.value)
        if isinstance(node, ast.BinOp):
            return join([self.value(node.left), self.value(node.right)])
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            return join((self.value(e) for e in node.elts), " ")
        if isinstance(node, ast.Dict):
            return join([*(self.value(k) for k in node.keys if k is not None),
                         *(self.value(v) for v in node.values)], " ")
        if isinstance(node, ast.Subscript):
            base = self.dotted(node.value)
            if base in ("os.environ", "os.environb"):
                key = self.value(node.slice).text
                return self._env(key)
            return self.value(node.value)
        if isinstance(node, ast.Attribute):
            if self.dotted(node) in ("os.environ", "os.environb"):
                return Val("⟨environ⟩", frozenset({"env"}))
            inner = self.value(node.value)
            if node.attr in _FETCH_ATTRS and "net" in inner.taints:
                return Val("⟨fetched⟩", inner.taints | {"fetched", "dynamic"}, inner.lines)
            return inner
        if isinstance(node, ast.Call):
            return self.call(node)
        if isinstance(node, (ast.Await, ast.Starred)):
            return self.value(node.value)
        parts = [self.value(c) for c in ast.iter_child_nodes(node) if isinstance(c, ast.expr)]
        return join(parts) if parts else Val("⟨expr⟩", frozenset({"dynamic"}))

    def _env(self, name: str) -> Val:
        if self.judge.ctx.is_key(name):
            return Val(f"${{{name}}}", frozenset({f"key:{name}"}), operator=True)
        return Val(f"${{{name}}}", operator=True)

    def visit_Assign(self, node: ast.Assign) -> None:
        if isinstance(node.value, (ast.Attribute, ast.Call, ast.Name)):
            called = self.dotted(node.value)  # f = os.system, f = getattr(os, "popen")
            if "." in called and "()" not in called and "?" not in called:
                for t in node.targets:
                    if isinstance(t, ast.Name):
                        self.aliases[t.id] = called
        val = self.value(node.value)
        val = Val(val.text, val.taints, val.lines | {self.line(node)}, operator=val.operator)
        for target in node.targets:
            for name in ast.walk(target):
                if isinstance(name, ast.Name):
                    self.vals[name.id] = val
                    if self.dotted(node.value.func if isinstance(node.value, ast.Call)
                                   else node.value).startswith("socket.socket"):
                        self.sockets.add(name.id)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None and isinstance(node.target, ast.Name):
            self.vals[node.target.id] = self.value(node.value)

    def visit_With(self, node: ast.With) -> None:
        for item in node.items:
            val = self.value(item.context_expr)
            if isinstance(item.optional_vars, ast.Name):
                self.vals[item.optional_vars.id] = val
        self.generic_visit(node)

    def visit_Expr(self, node: ast.Expr) -> None:
        self.value(node.value)

    def visit_Return(self, node: ast.Return) -> None:
        self.value(node.value)

    # --- calls ---------------------------------------------------------------------------

    def call(self, node: ast.Call) -> Val:
        fn = self.dotted(node.func)
        line = self.line(node)
        recv = self.value(node.func.value) if isinstance(node.func, ast.Attribute) and \
            isinstance(node.func.value, ast.Call) else None
        args = [self.value(a) for a in node.args]
        kw = {k.arg or "**": self.value(k.value) for k in node.keywords}
        everything = join([*args, *kw.values()])
        short = fn.rsplit(".", 1)[-1]
        if fn in ("getattr", "builtins.getattr") and len(node.args) >= 2 and \
                args[1].dynamic and self.dotted(node.args[0]).split(".")[0] in (
                    "os", "subprocess", "builtins", "pty", "socket", "importlib", "sys"):
            self.judge.event("fetch-exec", line, "getattr with a computed name on a module "
                             "that runs commands: the gate cannot tell what is called")
            return Val("⟨getattr⟩", frozenset({"dynamic"}))
        if fn in ("os.environ.get", "os.getenv", "os.environb.get") and args:
            return self._env(args[0].text)
        if fn in ("dict", "str", "repr", "json.dumps", "list", "print") and any(
                "env" in a.taints and a.text == "⟨environ⟩" for a in args):
            self.judge.event("env-dump", line, f"{fn}(os.environ) dumps the environment")
        if fn.startswith("os.environ.") and short in ("copy", "items", "keys", "values"):
            self.judge.event("env-dump", line, f"{fn}() reads the whole environment")
            return Val("⟨environ⟩", frozenset({"env"}), frozenset({line}))
        kind = _NET_CALLS.get(fn) or ("addr" if short == "connect" and (
            self.dotted(node.func).split(".")[0] in self.sockets or "socket" in fn) else None)
        if kind is None and short in ("get", "post", "put", "patch", "delete", "head",
                                      "options", "request", "stream", "urlopen", "fetch",
                                      "open", "connect", "ws_connect") and (
                (args and "://" in args[0].text) or (len(args) > 1 and "://" in args[1].text)
                or "://" in kw.get("url", Val("")).text):
            # a client object (requests.Session(), httpx.Client(), aiohttp) given a URL
            kind = "url" if args and "://" in args[0].text else "url2"
        if kind is not None:
            return self.network(fn, kind, node, args, kw, line)
        if fn in ("exec", "eval", "compile", "builtins.exec", "builtins.eval") and args:
            code = args[0]
            if code.dynamic or "env" in code.taints:
                self.judge.event("fetch-exec", line, f"{fn}() of data fetched, decoded or "
                                 f"computed at run time ({code.text[:50]})", code)
            elif self.depth < 4:
                self.judge.run_python(code.text, line, self.depth + 1)
            return Val("⟨exec⟩", frozenset({"dynamic"}))
        if fn in ("os.system", "os.popen", "commands.getoutput", "subprocess.getoutput") or (
                fn.startswith("subprocess.") and short in ("run", "call", "check_call",
                                                           "check_output", "Popen")) or (
                fn.startswith("os.exec") or fn.startswith("os.spawn") or fn == "pty.spawn"):
            return self.process(fn, node, args, line)
        if short in _DECODERS or fn in _DECODERS:
            return Val("⟨decoded⟩", everything.taints | {"decoded", "dynamic"}, everything.lines)
        if fn in ("open", "io.open", "pathlib.Path.open", "os.open") and args:
            mode = args[1].text if len(args) > 1 else kw.get("mode", Val("r")).text
            path = home_path(args[0].text)
            if any(c in mode for c in "wax+") and PERSIST_PATHS.search(path):
                self.judge.persist(f"open({path[:60]}, {mode!r})", line, args[0])
            if KEY_FILES.search(path):
                self.judge.event("env-dump", line, f"opens the key-bearing file {path[:60]}",
                                 args[0])
                return Val("⟨keyfile⟩", frozenset({"env"}), frozenset({line}))
            return Val(f"⟨file:{path[:40]}⟩", args[0].taints | {"dynamic"}, args[0].lines)
        if fn in ("shutil.rmtree", "os.removedirs") and args:
            p = home_path(args[0].text).rstrip("/") or "/"
            if p in ("/", "~") or p.count("/") <= 1 or "⟨" in p:
                self.judge.event("destructive", line, f"{fn}({args[0].text[:40]})", args[0])
        if fn in ("os.dup2",) and self.sockets:
            self.judge.event("net-egress", line, "os.dup2 of a socket onto stdio: a reverse "
                             "shell")
        if short in ("write", "writelines", "send", "sendall", "sendto") and everything.keys:
            target = recv if recv is not None else self.value(node.func.value) \
                if isinstance(node.func, ast.Attribute) else Val("")
            self.judge.check_keys(fn, [everything], line,
                                  "a socket" if short.startswith("send") else
                                  f"a file ({target.text[:40]})")
        if fn == "print" and (everything.keys or "env" in everything.taints):
            self.judge.check_keys("print", [everything], line, "the output")
        if recv is not None and short in ("expanduser", "resolve", "absolute", "joinpath",
                                          "with_name", "with_suffix"):
            return join([recv, *args], "/" if short == "joinpath" else "")
        if fn.endswith("Path.home") or fn.endswith("Path.home()"):
            return Val("~")
        if recv is not None and short in ("open", "write_text", "write_bytes", "touch",
                                          "symlink_to", "rename", "replace"):
            mode = args[0].text if args and short == "open" else "w"
            path = home_path(recv.text)
            if any(c in mode for c in "wax+") and PERSIST_PATHS.search(path):
                self.judge.persist(f"{short}({path[:60]})", line, recv)
        if fn in ("os.path.expanduser", "os.path.expandvars", "os.path.join", "pathlib.Path",
                  "Path", "os.path.abspath", "str", "os.fspath") and args:
            return join(args, "/" if fn == "os.path.join" else "")
        if short in ("encode", "decode", "format", "join", "strip", "replace", "lower",
                     "upper", "b64encode", "hexlify", "quote", "urlencode", "dumps"):
            base = recv if recv is not None else self.value(node.func.value) \
                if isinstance(node.func, ast.Attribute) else Val("")
            return join([base, everything])
        out = join([everything, Val("", frozenset({"dynamic"}))])
        return Val(f"⟨{fn}()⟩", out.taints, out.lines)

    def network(self, fn: str, kind: str, node: ast.Call, args: list[Val],
                kw: dict[str, Val], line: int) -> Val:
        target = args[1] if kind == "url2" and len(args) > 1 else (
            args[0] if args else kw.get("url", kw.get("host", Val(""))))
        word = target.text
        if kind == "addr" and node.args and isinstance(node.args[0], ast.Tuple) and \
                node.args[0].elts:
            target = self.value(node.args[0].elts[0])
            word = target.text
        if kind in ("host", "addr") and "://" not in word:
            word = "//" + word
            word = "x:" + word
        what = "looks up" if "gethost" in fn or "getaddrinfo" in fn else "connects to"
        if "net" in target.taints and target.text == "⟨net⟩":
            # urlopen(Request(...)): the Request's URL and headers were judged already
            return Val("⟨net⟩", frozenset({"net", "dynamic"}) | target.taints, target.lines)
        self.judge.check_hosts(fn, [Val(word, target.taints, target.lines,
                                        operator=target.operator)], line, what)
        self.judge.check_keys(fn, [target], line, "a URL or host name")
        for name, v in kw.items():
            if name == "headers":
                self._headers(fn, node, word, line)
            elif name not in ("timeout", "verify", "stream", "allow_redirects", "method"):
                self.judge.check_keys(fn, [v], line, f"the request's {name}")
        for extra in args[1 if kind != "url2" else 2:]:
            self.judge.check_keys(fn, [extra], line, "the request body")
        self.has_socket = self.has_socket or "socket" in fn
        return Val("⟨net⟩", frozenset({"net", "dynamic"}) | target.taints, target.lines)

    def _headers(self, fn: str, node: ast.Call, url: str, line: int) -> None:
        hdr = next((k.value for k in node.keywords if k.arg == "headers"), None)
        if not isinstance(hdr, ast.Dict):
            whole = self.value(hdr)
            self.judge.check_keys(fn, [whole], line, "request headers the gate cannot read")
            return
        for k, v in zip(hdr.keys, hdr.values, strict=True):
            key = self.value(k).text if k is not None else "**"
            val = self.value(v)
            if key.lower() == "authorization":
                self.judge.http("curl", [Val("-H"), Val(f"Authorization: {val.text}",
                                                          val.taints, val.lines),
                                         Val(url if "://" in url else "https://" + url)],
                                None, line)
            else:
                self.judge.check_keys(fn, [val], line, f"the request header {key[:30]}")

    def process(self, fn: str, node: ast.Call, args: list[Val], line: int) -> Val:
        first = node.args[0] if node.args else None
        shell_kw = any(k.arg == "shell" and isinstance(k.value, ast.Constant) and k.value.value
                       for k in node.keywords)
        if fn == "pty.spawn" or (fn.startswith("os.exec") and args):
            text = args[0].text if args else ""
            if self.sockets or self.has_socket or "sh" in text:
                self.judge.event("net-egress" if self.sockets else "fetch-exec", line,
                                 f"{fn} spawns a shell" + (" on a socket: a reverse shell"
                                                            if self.sockets else ""))
            return Val("⟨proc⟩", frozenset({"dynamic"}))
        if isinstance(first, (ast.List, ast.Tuple)) and not shell_kw:
            argv = [self.value(e) for e in first.elts]
            return self.judge.run(argv, line, None, [], self.depth)
        cmd = args[0] if args else Val("")
        if cmd.dynamic or "env" in cmd.taints:
            self.judge.event("fetch-exec", line, f"{fn} runs a command line computed at run "
                             f"time ({cmd.text[:50]})", cmd)
        else:
            self.judge.run_shell(cmd.text, line, self.depth + 1)
        return Val("⟨proc⟩", frozenset({"dynamic"}))


def analyse(text: str, judge: CommandJudge, base_line: int = 0, depth: int = 0) -> None:
    """Judge a Python ``text``; a syntax error is an ``unparseable`` event."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        line = base_line + (0 if depth else max(0, (getattr(exc, "lineno", 1) or 1) - 1))
        judge.event("unparseable", line, "Python that does not parse: the gate cannot tell "
                    "what it runs (fail closed)")
        return
    try:
        PythonAnalyser(judge, base_line, depth).visit(tree)
    except RecursionError:
        judge.event("unparseable", base_line, "Python nested too deep to read (fail closed)")
