"""Private: the judge's record and the effects that need no recursion (pure).

:class:`EffectRecorder` holds what a file did so far (events, fetched and written files,
aliases, assignments) and judges the commands whose effect is direct: network calls and
DNS lookups, ``/dev/tcp``, downloads, file writes and persistence, destructive commands,
code fetches. :class:`~.capabilities.CommandJudge` adds the dispatch and the commands
that run code again (interpreters, ``eval``, written files run later).
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from impromptu_ops.gate.vocabulary import (
    CODE_SUFFIX,
    DNS_TOOLS,
    KEY_FILES,
    PERSIST_PATHS,
    Context,
    Event,
    HttpCall,
    Val,
    basename,
    home_path,
    hosts_of,
    is_python,
    looks_like_host,
    parse_http,
)


@dataclass
class EffectRecorder:
    """What earlier lines did, and the direct effects of a command."""

    ctx: Context
    run_shell: Callable[[str, int, int], None] = lambda _t, _l, _d: None
    run_python: Callable[[str, int, int], None] = lambda _t, _l, _d: None
    events: list[Event] = field(default_factory=list)
    fetched_files: dict[str, frozenset[int]] = field(default_factory=dict)
    aliases: dict[str, list[Val]] = field(default_factory=dict)
    written: dict[str, Val] = field(default_factory=dict)
    assigned: dict[str, Val] = field(default_factory=dict)

    def event(self, cls: str, line: int, message: str, *vals: Val | None) -> None:
        lines = frozenset({line}).union(*(v.lines for v in vals if v is not None))
        self.events.append(Event(cls, line, lines, message))

    def check_hosts(self, tool: str, words: Iterable[Val], line: int,
                    what: str = "connects to") -> list[str]:
        """Raise net-egress for every host not allowlisted; the hosts seen."""
        seen: list[str] = []
        for w in words:
            for host in hosts_of(w.text):
                seen.append(host)
                if "$" in host or "⟨" in host:
                    if w.operator and not w.dynamic:
                        continue  # a host the operator configures in the environment
                    self.event("net-egress", line,
                               f"{tool} {what} a host computed at run time ({host[:60]})", w)
                elif not self.ctx.host_allowed(host):
                    self.event("net-egress", line,
                               f"{tool} {what} {host[:80]}, not in egress_allow", w)
        return seen

    def check_keys(self, tool: str, vals: Iterable[Val | None], line: int, where: str) -> None:
        for v in vals:
            if v is None:
                continue
            for name in sorted(v.keys):
                self.event("key-leak", line, f"{tool}: the key {name} goes into {where}", v)
            if "env" in v.taints:
                self.event("key-leak", line,
                           f"{tool}: the environment or a key file goes into {where}", v)

    def http(self, tool: str, args: list[Val], stdin: Val | None, line: int) -> HttpCall:
        call = parse_http(tool, args)
        if any(a.text in ("-i", "--input-file", "-K", "--config") or a.text.startswith(
                ("--input-file=", "--config=")) for a in args):
            self.event("net-egress", line, f"{tool} reads the addresses it connects to from "
                       "a file: the gate cannot see them")
        hosts = self.check_hosts(tool, [*call.urls, *call.proxies], line)
        for h in call.headers:
            m = re.match(r"(?i)\s*authorization\s*:", h.text)
            if not m:
                self.check_keys(tool, [h], line, "a request header other than Authorization")
                continue
            for name in sorted(h.keys):
                allowed = self.ctx.key_hosts.get(name, ())
                bad = [x for x in hosts if not ("$" in x and all(u.operator for u in call.urls))
                       and not self.ctx.host_allowed(x, allowed)]
                if bad or not hosts:
                    self.event("key-leak", line,
                               f"{tool} sends {name} to {', '.join(bad)[:80] or 'no named host'}"
                               f", not its own service ({', '.join(allowed) or 'none'})", h)
        self.check_keys(tool, call.urls, line, "a URL")
        self.check_keys(tool, [*call.others, *call.proxies], line, "a request body or option")
        self.check_keys(tool, [stdin], line, "a request body (stdin)")
        return call

    def devtcp(self, target: Val, line: int) -> None:
        m = re.search(r"/dev/(tcp|udp)/([^/\s]{1,253})", target.text)
        host = m.group(2) if m else "?"
        self.event("net-egress", line, f"opens a raw socket to {host[:80]} through "
                   f"/dev/{m.group(1) if m else 'tcp'} (a reverse shell or exfiltration)",
                   target)

    def network(self, name: str, args: list[Val], stdin: Val | None, line: int,
                writes: list[tuple[str, Val]]) -> None:
        texts = [a.text for a in args]
        if name in ("curl", "wget"):
            call = self.http(name, args, stdin, line)
            out = call.output
            targets: list[str] = []
            if out is not None and out.text != "-":
                targets.append(out.text)
            elif call.remote_name:
                for u in call.urls:
                    base = posixpath.basename(urllib.parse.urlsplit(u.text).path
                                              if "://" in u.text else u.text)
                    if base:
                        targets.append(base)
            targets += [w.text for op, w in writes if op in (">", ">>", "&>", ">|", "&>>")]
            for t in targets:
                self.downloaded(t, line, name)
            return
        if name in ("nc", "ncat", "netcat") and any(
                t in ("-e", "-c", "--exec", "--sh-exec", "--lua-exec") or (
                    t.startswith("-") and not t.startswith("--") and ("e" in t or "c" in t))
                for t in texts):
            self.event("net-egress", line, f"{name} with -e/-c: a reverse or bind shell")
        if name == "socat" and any(re.match(r"(?i)(exec|system):", t) for t in texts):
            self.event("net-egress", line, "socat exec:/system: a reverse shell")
        if name in ("nc", "ncat", "netcat") and any(
                t in ("-l", "--listen") or (t.startswith("-") and "l" in t and not
                                            t.startswith("--")) for t in texts):
            self.event("net-egress", line, f"{name} listens for connections (a bind shell "
                       "or a back door)")
        words = self._host_words(name, args)
        if name in DNS_TOOLS:
            self.check_keys(name, words, line, "a DNS name")
            self.check_hosts(name, words, line, "looks up")
        else:
            self.check_keys(name, args, line, "a network command's arguments")
            self.check_keys(name, [stdin], line, "a network command's input")
            if not words and name not in ("openssl", "mail", "sendmail", "mutt"):
                self.event("net-egress", line, f"{name} connects to a host it does not name")
            self.check_hosts(name, words, line)
        if name in ("openssl", "gnutls-cli") and "s_client" in texts:
            for a in args:
                if ":" in a.text and not a.text.startswith("-"):
                    self.check_hosts(name, [a], line)

    def _host_words(self, name: str, args: list[Val]) -> list[Val]:
        words: list[Val] = []
        skip = False
        for a in args:
            t = a.text
            if skip:
                skip = False
                continue
            if t.startswith("-"):
                skip = len(t) == 2 and t[1] in "pPilowWsqxetTbFcCJmRuUEIk"
                continue
            if name == "socat":
                m = re.match(r"(?i)(tcp|tcp4|tcp6|udp|udp4|udp6|openssl|ssl|sctp|dccp|socks4a?|"
                             r"proxy|ws|wss)(-connect)?:([^:,]{1,253})", t)
                if m:
                    words.append(Val(m.group(3), a.taints, a.lines, operator=a.operator))
                continue
            if name == "dig" and t.startswith("@"):
                words.append(Val(t[1:], a.taints, a.lines, operator=a.operator))
                continue
            if name in ("getent",) and t in ("hosts", "ahosts", "ahostsv4", "ahostsv6"):
                continue
            if name in ("scp", "rsync") and ":" not in t and "@" not in t:
                continue
            if name == "dig" and t.upper() in ("A", "AAAA", "TXT", "MX", "NS", "ANY", "CNAME",
                                              "SOA", "PTR", "SRV", "IN"):
                continue
            if re.fullmatch(r"\d{1,5}", t) and words:
                continue  # a port after the host
            if "://" in t or looks_like_host(t) or "@" in t or "$" in t or "⟨" in t:
                words.append(a)
        return words

    def downloaded(self, target: str, line: int, tool: str) -> None:
        path = target.removeprefix("./")
        self.fetched_files[path] = self.fetched_files.get(path, frozenset()) | {line}
        if CODE_SUFFIX.search(path):
            self.event("code-fetch", line, f"{tool} downloads code into {path[:60]}")

    def persist(self, what: str, line: int, val: Val | None = None) -> None:
        home = home_path(what)
        if any(fnmatch.fnmatch(home, pat) or fnmatch.fnmatch(what, pat)
               for pat in self.ctx.persistence_allow):
            return
        self.event("persistence", line, f"installs itself to run later: {what[:80]}", val)

    def write_to(self, tool: str, target: Val, line: int, op: str, stdin: Val | None) -> None:
        path = home_path(target.text)
        if "/dev/tcp/" in path or "/dev/udp/" in path:
            self.devtcp(target, line)
            return
        if op in ("<", "<<<") or path in ("/dev/null", "/dev/stderr", "/dev/stdout", "&1", "&2"):
            if op == "<" and KEY_FILES.search(path):
                self.event("env-dump", line, f"{tool} reads the key-bearing file {path[:60]}",
                           target)
            return
        if PERSIST_PATHS.search(path):
            self.persist(f"{tool} {op} {path}", line, target)
        elif re.match(r"^/dev/(sd|hd|vd|xvd|nvme|mmcblk|disk|md|dm-|loop)", path):
            self.event("destructive", line, f"{tool} writes over the device {path[:40]}",
                       target)
        if stdin is not None:
            self.check_keys(tool, [stdin], line, f"the file {path[:60]}")

    def file_writes(self, name: str, args: list[Val], stdin: Val | None, line: int) -> None:
        files = [a for a in args if not a.text.startswith("-")]
        if name == "tee":
            for f in files:
                self.write_to("tee", f, line, ">>", stdin)
                self.written[f.text] = stdin if stdin is not None else Val(
                    "", frozenset({"dynamic"}))
        elif name in ("cp", "mv", "install", "ln", "rsync") and len(files) >= 2:
            self.write_to(name, files[-1], line, ">", None)
            for src in files[:-1]:
                p = src.text.removeprefix("./")
                if p in self.fetched_files and name in ("cp", "mv", "install", "ln"):
                    self.fetched_files[files[-1].text.removeprefix("./")] = \
                        self.fetched_files[p]
        elif name == "dd":
            for a in args:
                if a.text.startswith("of="):
                    self.write_to("dd", Val(a.text[3:], a.taints, a.lines), line, ">", None)
        elif name in ("sed", "perl") and any(a.text.startswith("-i") or a.text == "-pi"
                                             for a in args):
            for f in files[1:]:
                self.write_to(name, f, line, ">", None)
        elif name in ("truncate", "touch", "patch", "ed", "sponge"):
            for f in files:
                if PERSIST_PATHS.search(home_path(f.text)) and name != "touch":
                    self.write_to(name, f, line, ">", None)
        elif name == "chmod":
            mode = files[0].text if files else ""
            if re.search(r"\+[rwXst]{0,4}x|^[0-7]{0,1}[1357][0-7]{2}$|^[0-7]{3}[1357]$|=.{0,4}x",
                         mode):
                for f in files[1:]:
                    p = f.text.removeprefix("./")
                    if p in self.fetched_files:
                        self.event("fetch-exec", line, f"makes the downloaded file {p[:60]} "
                                   "executable", f, Val("", lines=self.fetched_files[p]))

    def destructive(self, name: str, args: list[Val], line: int) -> None:
        texts = [a.text for a in args]
        flags = "".join(t.lstrip("-") for t in texts if t.startswith("-") and
                        not t.startswith("--"))
        longs = [t for t in texts if t.startswith("--")]
        targets = [a for a in args if not a.text.startswith("-")]
        if name in ("shred", "srm", "wipefs", "blkdiscard") or name.startswith("mkfs") or (
                name in ("fdisk", "sfdisk", "parted")):
            self.event("destructive", line, f"{name} {' '.join(texts)[:60]}".strip())
            return
        if name == "dd":
            return  # of= is judged as a write
        recursive = "r" in flags.lower() or "--recursive" in longs or name == "find"
        if name == "find":
            removes = "-delete" in texts or any(
                t in ("-exec", "-execdir", "-ok") and i + 1 < len(texts)
                and basename(texts[i + 1]) in ("rm", "shred", "unlink", "srm")
                for i, t in enumerate(texts))
            filtered = any(t in ("-name", "-iname", "-path", "-ipath", "-regex", "-newer",
                                 "-mtime", "-mmin", "-user") for t in texts)
            if not removes or (filtered and home_path(targets[0].text if targets else ".")
                               not in ("/", "~", "~/")):
                return
            targets = targets[:1]
        if name in ("chmod", "chown") and not recursive:
            return
        if name in ("chmod", "chown", "mv"):
            targets = targets[1:] if name != "mv" else targets[:-1]
        if name in ("rm", "unlink", "rmdir", "truncate") and not (
                recursive or "f" in flags or name == "truncate"
                or "--no-preserve-root" in longs):
            return
        for t in targets:
            if self._dangerous(t, recursive) or "--no-preserve-root" in longs:
                self.event("destructive", line, f"{name} {' '.join(texts)[:60]}: removes or "
                           f"overwrites {t.text[:40] or 'everything'}", t)
                return

    def _dangerous(self, target: Val, recursive: bool = True) -> bool:
        if not target.text:
            return False  # rm "" removes nothing
        p = home_path(target.text).rstrip("/") or "/"
        if "tmp" in target.taints:
            return False
        if p in ("/", "~", ".", "..", "*", "/*", "~/*", "~/.*", ".*", "./*", "../*"):
            return True
        if recursive and re.fullmatch(r"(\$\{?\w{1,64}\}?|⟨[^⟩]{0,40}⟩)(/\*?|/\.\*)?", p):
            return True  # a bare variable: empty or wrong, it removes / or the caller's files
        parts = [x for x in p.split("/") if x]
        if p.startswith("/") and len(parts) <= 1:
            return True
        if p.startswith("~") and len(parts) <= 2:
            return True
        return any("*" in x for x in parts[:2]) and p.startswith(("/", "~"))

    def code_fetch(self, name: str, texts: list[str], line: int, val: Val) -> None:
        verbs = {"git": ("clone", "pull", "fetch", "submodule", "remote"),
                 "npm": ("install", "i", "ci", "add", "exec", "x", "update", "init", "create"),
                 "pnpm": ("add", "install", "i", "dlx", "exec", "update", "create"),
                 "yarn": ("add", "install", "dlx", "create", "global"),
                 "bun": ("add", "install", "i", "x", "create"),
                 "go": ("install", "get", "run"), "cargo": ("install",),
                 "docker": ("pull", "run"), "podman": ("pull", "run"),
                 "helm": ("install", "upgrade", "repo"), "kubectl": ("apply", "run", "create"),
                 "deno": ("run", "install", "add"), "uv": ("pip", "add", "tool", "run"),
                 "poetry": ("add", "install"), "composer": ("require", "install"),
                 "snap": ("install",), "flatpak": ("install",)}
        words = [t for t in texts if not t.startswith("-")]
        if name in ("npx", "bunx", "cpan", "cpanm") or (
                name in ("pip", "pip3", "pipx", "conda", "mamba", "gem", "brew", "apt",
                         "apt-get", "yum", "dnf", "apk") and words[:1] and words[0] in (
                    "install", "add", "download", "run", "upgrade", "inject", "reinstall"
                )) or (is_python(name) and "pip" in texts[:2]):
            self.event("code-fetch", line, f"{name} {' '.join(texts)[:60]}: installs code "
                       "from a registry or URL", val)
        elif name in verbs and any(w in verbs[name] for w in words[:3]):
            self.event("code-fetch", line, f"{name} {' '.join(texts)[:60]}: fetches code",
                       val)
