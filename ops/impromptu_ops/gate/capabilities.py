"""Private: What code can do, judged from its commands: the capability classes of the update gate
(pure).

:mod:`.shell` (tree-sitter) and :mod:`.python_code` (``ast``) turn a file into commands whose
words are already normalised (quotes, escapes, ``${IFS}``, printf and ``$'..'`` literals,
command substitutions and simple variable flows resolved). :class:`CommandJudge` classifies
each command and records an :class:`Event` in one of :data:`CLASSES`:

=================  ============================================================================
class              what it means (every one is a deny rule in ``policies/update-gate.toml``)
=================  ============================================================================
``net-egress``     a connection to a host not allowlisted (``[gate] egress_allow``), to a host
                   computed at run time, a DNS lookup of such a name, a socket one-liner, a
                   reverse or bind shell (``nc -e``, ``socat exec:``, ``/dev/tcp``)
``key-leak``       a key anywhere but the Authorization header of a request to its own service
                   (``[gate.key_hosts]``): a body, URL, DNS name, other host, file, stdout
``env-dump``       the whole environment or a key-bearing file read (``env``, ``set``,
                   ``export -p``, ``/proc/*/environ``, ``~/.impromptu/env``...)
``fetch-exec``     fetched or decoded content executed (pipe to a shell or interpreter,
                   ``eval``, ``source``, ``bash <(..)``, a download run or made executable later)
``persistence``    cron, at, shell rc files, systemd/launchd units, authorized_keys, LD_PRELOAD
                   (unless allowlisted in ``[gate] persistence_allow``)
``destructive``    ``rm -r`` of /, ~, a top-level folder, a bare variable or wildcard; dd to a
                   device, mkfs, shred, wipefs
``code-fetch``     git clone/pull, package installs (pip, npm, npx...), a download saved as code
``unparseable``    a file that should be shell or Python and does not parse (fail closed)
=================  ============================================================================

Values (:class:`Val`) carry taints: ``key:NAME`` (a key's value), ``keypart:NAME`` (a short
slice of one, as a masked display), ``env`` (the environment or a key file), ``fetched``
(network content), ``decoded`` (base64, hex, rev, printf escapes), ``dynamic`` (computed at
run time). A value we cannot know is a placeholder such as ``${NAME}`` so that the same
variable compares equal on a later line.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import posixpath
import re
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

CLASSES: Final = ("net-egress", "key-leak", "env-dump", "fetch-exec", "persistence",
                  "destructive", "code-fetch", "unparseable")

SHELLS: Final = frozenset({"sh", "bash", "zsh", "dash", "ksh", "mksh", "ash", "fish", "csh",
                           "tcsh", "yash", "rbash"})
INTERPRETERS: Final = frozenset({"perl", "ruby", "node", "nodejs", "php", "deno", "bun", "lua",
                                 "pwsh", "powershell", "osascript", "Rscript", "tclsh", "awk",
                                 "gawk", "mawk", "nawk"})
_PYTHON_RE: Final = re.compile(r"^python(\d(\.\d{1,2})?)?$|^pypy3?$")
WRAPPERS: Final = frozenset({"sudo", "doas", "command", "builtin", "exec", "nohup", "time",
                             "nice", "ionice", "timeout", "stdbuf", "setsid", "env", "busybox",
                             "chroot", "unbuffer", "torsocks", "proxychains", "proxychains4",
                             "xargs", "watch", "flock", "runuser", "su", "script", "caffeinate"})
NET_TOOLS: Final = frozenset({"curl", "wget", "nc", "ncat", "netcat", "socat", "telnet", "ssh",
                              "scp", "sftp", "rsync", "ftp", "tftp", "lftp", "http", "https",
                              "xh", "aria2c", "axel", "httpie", "openssl", "gnutls-cli",
                              "websocat", "wscat", "smbclient", "mail", "sendmail", "mutt",
                              "nmap", "ping", "ping6", "traceroute", "mtr", "whois"})
DNS_TOOLS: Final = frozenset({"nslookup", "dig", "host", "drill", "resolvectl", "getent",
                              "kdig", "delv"})
DECODERS: Final = frozenset({"base64", "base32", "basenc", "xxd", "rev", "uudecode", "openssl",
                             "gunzip", "zcat", "gzip", "bzip2", "bunzip2", "xz", "unxz",
                             "tr", "od", "hexdump", "perl", "python", "python3", "iconv"})
KEY_FILES: Final = re.compile(
    r"\.impromptu/env\b|\.aws/credentials|\.netrc\b|\.git-credentials|\.vault-token|"
    r"\.docker/config\.json|\.kube/config|\.config/(gh|hub)/|secrets\.store\b|store\.key\b|"
    r"\.ssh/(id_|.*_key\b)|\bid_(rsa|dsa|ecdsa|ed25519)\b|\.gnupg/|/proc/[^/\s]{1,12}/environ|"
    r"\.bash_history|\.zsh_history|wallet\.json|keystore|(^|/)\.(ssh|gnupg|aws)/?$")
PERSIST_PATHS: Final = re.compile(
    r"(^|/)\.(bashrc|bash_profile|bash_login|bash_logout|profile|zshrc|zprofile|zshenv|zlogin|"
    r"kshrc|mkshrc|cshrc|tcshrc|inputrc|xprofile|xinitrc|xsessionrc)$|"
    r"\.config/fish/|\.ssh/(authorized_keys2?|config|rc)$|^/etc/(profile|bash\.bashrc|zsh/|"
    r"environment|cron|crontab|anacrontab|systemd/|rc\.local|init\.d/|init/|ld\.so\.preload|"
    r"sudoers|update-motd\.d/|xdg/autostart/)|/var/spool/cron|\.config/systemd/|"
    r"^/(usr/)?lib/systemd/|Library/Launch(Agents|Daemons)/|\.config/autostart/|"
    r"\.git/hooks/|\.local/share/systemd/|/etc/ld\.so\.preload")
CODE_SUFFIX: Final = re.compile(
    r"\.(sh|bash|zsh|ksh|py|pyc|pl|rb|js|mjs|cjs|ts|php|lua|ps1|so|dylib|dll|exe|bin|elf|jar|"
    r"whl|deb|rpm|apk|appimage|run|tar|tgz|gz|xz|bz2|zip|7z)$", re.IGNORECASE)
LOOPBACK: Final = ("localhost", "127.0.0.1", "::1")
# Commands that may see a key's value without sending it anywhere: tests and assignments.
_KEY_SAFE: Final = frozenset({"[", "[[", "test", ":", "export", "local", "readonly", "declare",
                              "typeset", "unset", "true", "false", "eval", "sh", "bash"})


@dataclass(frozen=True)
class Context:
    """What the policy allows (``[gate]`` of ``policies/update-gate.toml``)."""

    egress_allow: tuple[str, ...] = ()
    key_hosts: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    key_name: re.Pattern[str] = re.compile(r"(API_KEY|_TOKEN|_SECRET|SECRET_ID|PASSWORD|"
                                           r"PRIVATE_KEY|_PASSPHRASE|MNEMONIC)$")
    persistence_allow: tuple[str, ...] = ()

    def is_key(self, name: str) -> bool:
        return name in self.key_hosts or bool(self.key_name.search(name))

    def host_allowed(self, host: str, allowed: Iterable[str] | None = None) -> bool:
        host = host.lower().strip("[]").rstrip(".")
        if not re.fullmatch(r"[a-z0-9.:-]{1,253}", host):
            return False  # userinfo tricks, backslashes, spaces: not a host we can vouch for
        try:
            if ipaddress.ip_address(host).is_loopback:
                return True
        except ValueError:
            if host == "localhost":
                return True
        domains = self.egress_allow if allowed is None else tuple(allowed)
        return any(host == d or host.endswith("." + d) for d in domains)


@dataclass(frozen=True)
class Val:
    """A normalised word: its text (or a placeholder), taints, and the lines it came from."""

    text: str
    taints: frozenset[str] = frozenset()
    lines: frozenset[int] = frozenset()
    split: bool = False  # an unquoted expansion: subject to word splitting
    operator: bool = False  # an environment variable the operator sets (not this file)

    @property
    def keys(self) -> set[str]:
        return {t[4:] for t in self.taints if t.startswith("key:")}

    @property
    def dynamic(self) -> bool:
        return bool(self.taints & {"fetched", "decoded", "dynamic"})

    @property
    def untrusted(self) -> bool:
        """Came from the network, a decoder or the environment: running it is running
        something nobody reviewed. (Merely computed, like ``$(dirname "$0")``, is not.)"""
        return bool(self.taints & {"fetched", "decoded", "env"})


def join(parts: Iterable[Val], sep: str = "") -> Val:
    parts = list(parts)
    return Val(sep.join(p.text for p in parts),
               frozenset().union(*(p.taints for p in parts)) if parts else frozenset(),
               frozenset().union(*(p.lines for p in parts)) if parts else frozenset(),
               any(p.split for p in parts),
               # the host of a URL is decided by its first part: "$API/v1" is the operator's
               next((p.operator for p in parts if p.text), False))


@dataclass(frozen=True)
class Event:
    """One capability finding: its class, the line to report, every line involved."""

    cls: str
    line: int  # 0-based
    lines: frozenset[int]
    message: str


def code_kind(path: str, text: str) -> str:
    """``shell``, ``python`` or ``""`` (not code we parse) for a file of the candidate."""
    name = path.rsplit("/", 1)[-1].lower()
    first = text.split("\n", 1)[0] if text.startswith("#!") else ""
    interp = first[2:].strip().split()
    prog = posixpath.basename(interp[0]) if interp else ""
    if prog == "env" and len(interp) > 1:
        prog = next((w for w in interp[1:] if not w.startswith("-")), "")
    if name.endswith((".sh", ".bash", ".zsh", ".ksh", ".dash")) or prog in SHELLS:
        return "shell"
    if name.endswith((".py", ".pyw")) or _PYTHON_RE.match(prog):
        return "python"
    if name.endswith(("rc", ".profile")) and name.startswith("."):
        return "shell"
    return ""


def basename(word: str) -> str:
    return posixpath.basename(word) if "/" in word and not word.endswith("/") else word


def is_python(name: str) -> bool:
    return bool(_PYTHON_RE.match(name))


def hosts_of(word: str) -> list[str]:
    """Hosts a word names as a URL (``scheme://host``), ``user@host:path`` or a bare host."""
    if "://" in word:
        try:
            parts = urllib.parse.urlsplit(word)
            netloc = parts.netloc.rsplit("@", 1)[-1]
        except ValueError:
            return [word]
        if "\\" in parts.netloc or parts.netloc.count("@") > 1:
            return [parts.netloc]  # parsers disagree on where such a host ends: not allowed
        host = netloc.rsplit(":", 1)[0] if not netloc.startswith("[") else netloc.split("]")[0]
        return [host.strip("[]")] if host else [word]
    w = word.rsplit("@", 1)[-1]
    w = w.split("/", 1)[0]
    if w.count(":") == 1:
        w = w.split(":", 1)[0]
    return [w] if w else []


def _looks_like_host(word: str) -> bool:
    if not word or word.startswith(("-", "/", "~")):
        return False
    try:
        ipaddress.ip_address(word.strip("[]"))
        return True
    except ValueError:
        pass
    return bool(re.fullmatch(r"[A-Za-z0-9${}_.-]{1,253}(:\d{1,5})?", word)) and (
        "." in word or "$" in word or word in LOOPBACK)


def _words(text: str) -> list[str]:
    return text.split()


def home_path(text: str) -> str:
    """``$HOME``, ``${HOME}`` and ``~`` spelled one way (``~``)."""
    return re.sub(r"^(\$\{HOME\}|\$HOME|~[a-z0-9_-]{0,32})(?=/|$)", "~", text)


_CURL_VALUE: Final = frozenset(_words(
    "-H --header -d --data --data-raw --data-binary --data-urlencode --data-ascii --json "
    "-F --form --form-string -o --output -X --request -u --user -A --user-agent -e "
    "--referer -b --cookie -c --cookie-jar -T --upload-file -w --write-out -x --proxy -m "
    "--max-time --connect-timeout --retry --retry-delay --retry-max-time -K --config "
    "--cacert --capath --cert --key --resolve --connect-to -U --proxy-user --url -r "
    "--range -z --time-cond -Y -y --limit-rate --oauth2-bearer -E --interface "
    "--dns-servers --doh-url --output-dir -C --continue-at --variable --aws-sigv4 "
    "--proxy-header --mail-from --mail-rcpt -Q --quote --max-filesize "
    "--expect100-timeout --unix-socket --abstract-unix-socket --local-port "
    "--happy-eyeballs-timeout-ms --keepalive-time --tls-max --ciphers -D --dump-header "
    "--trace --trace-ascii --stderr --noproxy --pinnedpubkey "
))
_CURL_SHORT_VALUE: Final = frozenset("HdoFXuAebcTwxmKUrzYyECDQ")
_WGET_VALUE: Final = frozenset(_words(
    "-O --output-document -o --output-file -a --append-output -P --directory-prefix "
    "--header --post-data --post-file --body-data --body-file -U --user-agent --user "
    "--password --http-user --http-password -e --execute --method -t --tries -T "
    "--timeout --referer --load-cookies --save-cookies -i --input-file -B --base -w "
    "--wait --bind-address --ca-certificate --certificate --private-key -Q --quota "
    "--limit-rate "
))
_WGET_SHORT_VALUE: Final = frozenset("OoaPUeitTBwQ")


@dataclass
class HttpCall:
    """A curl/wget command taken apart: URLs, headers, other option values, output file."""

    urls: list[Val] = field(default_factory=list)
    headers: list[Val] = field(default_factory=list)
    others: list[Val] = field(default_factory=list)
    output: Val | None = None
    remote_name: bool = False
    to_stdout: bool = False
    proxies: list[Val] = field(default_factory=list)


def parse_http(tool: str, args: list[Val]) -> HttpCall:
    """Split curl or wget arguments (options with values, glued short options, URLs)."""
    long_vals = _CURL_VALUE if tool == "curl" else _WGET_VALUE
    short_vals = _CURL_SHORT_VALUE if tool == "curl" else _WGET_SHORT_VALUE
    call = HttpCall(to_stdout=tool == "curl")
    i = 0

    def take(opt: str, val: Val) -> None:
        if opt in ("-H", "--header", "--proxy-header"):
            call.headers.append(val)
        elif opt == "--url":
            call.urls.append(val)
        elif (opt in ("-o", "--output") and tool == "curl") or opt in ("-O", "--output-document"):
            call.output = val
            call.to_stdout = val.text == "-"
        elif opt in ("-x", "--proxy", "--doh-url"):
            call.proxies.append(val)
        elif opt == "--oauth2-bearer":
            call.headers.append(Val("Authorization: Bearer " + val.text, val.taints, val.lines))
        else:
            call.others.append(val)

    while i < len(args):
        a = args[i]
        t = a.text
        if t.startswith("--") and len(t) > 2:
            opt, eq, rest = t.partition("=")
            if eq:
                take(opt, Val(rest, a.taints, a.lines))
            elif opt in long_vals and i + 1 < len(args):
                i += 1
                take(opt, args[i])
            elif opt == "--remote-name":
                call.remote_name = True
            else:
                call.others.append(a)
        elif t.startswith("-") and len(t) > 1:
            for k, ch in enumerate(t[1:], start=1):
                if ch in short_vals:
                    rest = t[k + 1:]
                    if rest:
                        take("-" + ch, Val(rest, a.taints, a.lines))
                    elif i + 1 < len(args):
                        i += 1
                        take("-" + ch, args[i])
                    break
                if ch == "O" and tool == "curl":
                    call.remote_name = True
        else:
            call.urls.append(a)
        i += 1
    if tool == "wget" and call.output is None:
        call.remote_name = True
    return call


@dataclass
class CommandJudge:
    """Classifies commands in the order a file runs them; keeps what earlier lines did."""

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

    # --- hosts, keys ---------------------------------------------------------------------

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

    # --- the command ---------------------------------------------------------------------

    def unwrap(self, argv: list[Val]) -> list[Val]:
        """Strip sudo/env/nohup/timeout... so that the command that runs is argv[0]."""
        for _ in range(8):
            if not argv:
                return argv
            name = basename(argv[0].text)
            if name not in WRAPPERS:
                return argv
            rest = argv[1:]
            if name == "command" and rest and rest[0].text in ("-v", "-V"):
                return []  # a lookup, not a run
            if name in ("su", "runuser", "script", "watch") and any(
                    a.text in ("-c", "--command") for a in rest):
                k = next(i for i, a in enumerate(rest) if a.text in ("-c", "--command"))
                return [Val("sh"), Val("-c"), *rest[k + 1:k + 2]]
            i = 0
            while i < len(rest) and (rest[i].text.startswith("-") or "=" in rest[i].text
                                     or (name in ("timeout", "nice", "ionice", "chroot",
                                                  "flock") and i == 0
                                         and not rest[i].text.startswith("-"))):
                if name in ("sudo", "doas", "nice", "env", "timeout", "ionice", "xargs",
                            "stdbuf") and rest[i].text in (
                        "-u", "-g", "-n", "-c", "-s", "-k", "-I", "-L", "-P", "-d", "-S",
                        "--signal", "--user", "-C", "-p"):
                    i += 1
                i += 1
            argv = rest[i:]
        return argv

    def run(self, argv: list[Val], line: int, stdin: Val | None,
            writes: list[tuple[str, Val]], depth: int) -> Val:
        """Judge one command; returns what it writes to stdout (as far as we can tell)."""
        taints_in = frozenset().union(*(a.taints for a in argv)) if argv else frozenset()
        lines_in = frozenset().union(*(a.lines for a in argv)) if argv else frozenset()
        raw_name = basename(argv[0].text) if argv else ""
        if raw_name in ("env", "printenv") and not [
                a for a in argv[1:] if not a.text.startswith("-") and "=" not in a.text]:
            self.event("env-dump", line, f"{raw_name} dumps the environment")
            return Val("⟨env⟩", frozenset({"env", "dynamic"}), lines_in | {line})
        if raw_name == "xargs":
            argv, stdin = self._xargs(argv[1:], stdin), None
            raw_name = basename(argv[0].text) if argv else ""
        argv = self.unwrap(argv)
        if argv and argv[0].text in self.aliases:
            argv = [*self.aliases[argv[0].text], *argv[1:]]
            argv = self.unwrap(argv)
        for op, target in writes:
            self.write_to(raw_name or "redirect", target, line, op, stdin=None)
        if not argv:
            return Val("", taints_in, lines_in)
        name = basename(argv[0].text)
        args = argv[1:]
        texts = [a.text for a in args]
        out_taints = set(taints_in | (stdin.taints if stdin else frozenset()))
        out_lines = lines_in | (stdin.lines if stdin else frozenset())

        if name == "alias":
            for a in args:
                key, eq, value = a.text.partition("=")
                if eq:
                    self.aliases[key] = [Val(w, a.taints, a.lines) for w in value.split()]
        if argv[0].text.startswith("${") and any(
                a.taints & {"fetched", "decoded"} for a in [*args, *([stdin] if stdin else [])]):
            self.event("fetch-exec", line, f"hands fetched or decoded content to "
                       f"{argv[0].text[:40]}, a command chosen at run time", argv[0])
        if name in ("find", "fd") and any(t in ("-exec", "-execdir", "-ok", "-okdir", "-x",
                                                  "--exec") for t in texts):
            k = next(i for i, t in enumerate(texts) if t in ("-exec", "-execdir", "-ok",
                                                            "-okdir", "-x", "--exec"))
            sub = []
            for a in args[k + 1:]:
                if a.text in (";", "+", "\\;"):
                    break
                sub.append(a)
            if sub:
                self.run(sub, line, None, [], depth + 1)
        for spelled in (argv[0].text, argv[0].text.removeprefix("./")):
            if spelled in self.written:
                self._run_written(name, spelled, line, depth)
                break
        if name in ("git", "pip", "pip3", "npm", "pnpm", "yarn", "gem", "go", "docker",
                    "podman", "helm", "cargo", "uv", "pipx", "conda"):
            self.check_hosts(name, [a for a in args if "://" in a.text or re.match(
                r"[\w.-]{1,64}@[\w.-]{1,253}:", a.text)], line)
        if "$" in argv[0].text or "⟨" in argv[0].text:
            # a command we cannot name: still judge where its URL arguments point
            self.check_hosts(argv[0].text[:40], [a for a in args if "://" in a.text], line)
        if argv[0].untrusted and ("$" in argv[0].text or "⟨" in argv[0].text):
            self.event("fetch-exec", line, f"runs a command computed at run time "
                       f"({argv[0].text[:60]})", argv[0])
        path = argv[0].text.removeprefix("./")
        if path in self.fetched_files:
            self.event("fetch-exec", line, f"runs the downloaded file {path[:60]}", argv[0],
                       Val("", lines=self.fetched_files[path]))

        for a in args:
            if KEY_FILES.search(home_path(a.text)) and name not in (
                    "mkdir", "test", "[", "[[", "chmod", "chown", "chgrp", "rm", "touch", "cd",
                    "ls", "stat", "echo", "printf", "rmdir"):
                self.event("env-dump", line, f"{name} reads a key-bearing file "
                           f"({a.text[:60]})", a)
                out_taints.add("env")
        for name_ in ("/dev/tcp/", "/dev/udp/"):
            for a in args:
                if name_ in a.text:
                    self.devtcp(a, line)

        if name in NET_TOOLS or name in DNS_TOOLS:
            self.network(name, args, stdin, line, writes)
            out_taints = {"fetched"}  # the answer, not the request (its key was judged)
        elif name in SHELLS or is_python(name) or name in INTERPRETERS or name in ("source",
                                                                                    "."):
            self.interpreter(name, args, stdin, line, depth)
        elif name == "eval":
            code = join(args, " ")
            if code.untrusted:
                self.event("fetch-exec", line, "eval of text fetched, decoded or read from "
                           "the environment at run time "
                           f"({code.text[:60]})", code)
            else:
                self.nested("shell", code, line, depth)
        elif name in ("env", "printenv") and not [t for t in texts if not t.startswith("-")]:
            self.event("env-dump", line, f"{name} dumps the environment")
            out_taints.add("env")
        elif name == "printenv":
            for t in texts:
                if self.ctx.is_key(t):
                    self.event("key-leak", line, f"printenv prints the key {t}")
                    out_taints.add(f"key:{t}")
        elif name == "set" and texts in ([], ["-o", "posix"]):
            self.event("env-dump", line, "set with no arguments dumps every variable")
            out_taints.add("env")
        elif name == "set" and (any(re.fullmatch(r"-[a-zA-Z]{1,12}", t) and "x" in t
                                    for t in texts[:texts.index("--") if "--" in texts
                                                   else len(texts)]) or "xtrace" in texts):
            self.event("env-dump", line, f"set {' '.join(texts)} traces every command with "
                       "its variables expanded (keys included) to stderr")
        elif name in ("export", "declare", "typeset", "readonly", "local") and (
                not texts or any(t in ("-p", "-x", "-px", "-xp") for t in texts)) and not any(
                "=" in t for t in texts):
            self.event("env-dump", line, f"{name} {' '.join(texts)} dumps the environment")
            out_taints.add("env")
        elif name == "compgen" and any(t in ("-v", "-e", "-A") for t in texts):
            self.event("env-dump", line, "compgen lists every variable")
        elif name == "ps" and any("e" in t.lstrip("-") and "w" in t for t in texts):
            self.event("env-dump", line, "ps with e shows other processes' environments")
        elif name in ("crontab", "at", "batch") and not (name == "crontab" and texts in (
                ["-l"], ["-l", "-u"])):
            self.persist(f"{name} {' '.join(texts)}".strip(), line, argv[0])
        elif name in ("systemctl", "launchctl") and any(t in (
                "enable", "link", "reenable", "preset", "load", "bootstrap", "submit",
                "daemon-reload", "edit", "set-environment", "import-environment")
                for t in texts):
            self.persist(f"{name} {' '.join(texts)}", line, argv[0])
        elif name in ("tee", "cp", "mv", "install", "ln", "dd", "sed", "truncate", "touch",
                      "chmod", "rsync", "cat", "patch", "ed", "perl", "sponge"):
            self.file_writes(name, args, stdin, line)
        if name not in NET_TOOLS and name not in DNS_TOOLS and name not in _KEY_SAFE and not (
                name == "printf" and texts[:1] == ["-v"]):
            for a in args:
                for key in sorted(a.keys):
                    self.event("key-leak", line, f"{name} is given the key {key} (its output, "
                               "arguments and logs are not the key's service)", a)
        if name in ("rm", "rmdir", "shred", "dd", "mkfs", "wipefs", "find", "chmod", "chown",
                    "mv", "truncate", "srm", "fdisk", "sfdisk", "parted", "blkdiscard",
                    "unlink") or name.startswith("mkfs"):
            self.destructive(name, args, line)
        if name in ("git", "pip", "pip3", "pipx", "uv", "poetry", "npm", "npx", "pnpm", "yarn",
                    "bunx", "bun", "gem", "go", "cargo", "brew", "apt", "apt-get", "yum",
                    "dnf", "apk", "conda", "mamba", "deno", "composer", "cpan", "cpanm",
                    "snap", "flatpak", "docker", "podman", "helm", "kubectl") or (
                is_python(name) and texts[:2] == ["-m", "pip"]):
            self.code_fetch(name, texts, line, argv[0])
        if self._decodes(name, texts, stdin):
            out_taints.add("decoded")
        if name == "mktemp":
            out_taints.add("tmp")
        if stdin is not None and stdin.dynamic and name not in ("jq", "grep", "head", "tail",
                                                                "wc", "cut", "sed", "awk",
                                                                "sort", "uniq", "cat", "tee"):
            out_taints.add("dynamic")
        if name in ("cat", "head", "tail", "less", "more", "strings", "xxd", "od") and any(
                a.text.removeprefix("./") in self.fetched_files for a in args):
            out_taints.add("fetched")
        out_taints.add("dynamic")
        return Val(f"⟨{name}⟩", frozenset(out_taints), out_lines)

    def nested(self, kind: str, code: Val, line: int, depth: int) -> None:
        """Read ``code`` (text run as code on ``line``) as shell or Python; what it does
        belongs to the lines the code came from as much as to ``line``."""
        first = len(self.events)
        (self.run_shell if kind == "shell" else self.run_python)(code.text, line, depth + 1)
        self.events[first:] = [Event(e.cls, e.line, e.lines | code.lines, e.message)
                               for e in self.events[first:]]

    def _xargs(self, args: list[Val], stdin: Val | None) -> list[Val]:
        """The command xargs runs, with its input put where xargs puts it."""
        replace = ""
        i = 0
        while i < len(args) and args[i].text.startswith("-"):
            t = args[i].text
            if t in ("-I", "--replace") and i + 1 < len(args):
                replace = args[i + 1].text
                i += 1
            elif t.startswith("-I") and len(t) > 2:
                replace = t[2:]
            elif t in ("-i",):
                replace = "{}"
            elif t in ("-n", "-L", "-P", "-d", "-s", "-a", "-E") and i + 1 < len(args):
                i += 1
            i += 1
        cmd = args[i:] or [Val("echo")]
        feed = stdin if stdin is not None else Val("⟨stdin⟩", frozenset({"dynamic"}))
        item = Val(feed.text.strip(), feed.taints, feed.lines, operator=feed.operator)
        if replace:
            return [Val(a.text.replace(replace, item.text), a.taints | item.taints,
                        a.lines | item.lines) if replace in a.text else a for a in cmd]
        return [*cmd, *[Val(w, item.taints, item.lines) for w in item.text.split()]]

    def _run_written(self, name: str, path: str, line: int, depth: int) -> None:
        """A script this file wrote (a here-document, echo > file) and now runs."""
        content = self.written[path]
        first = len(self.events)
        self._judge_written(content, path, line, depth)
        # what it does belongs to the lines that wrote it as much as to the line running it
        self.events[first:] = [Event(e.cls, e.line, e.lines | content.lines, e.message)
                               for e in self.events[first:]]

    def _judge_written(self, content: Val, path: str, line: int, depth: int) -> None:
        if content.untrusted:
            self.event("fetch-exec", line, f"runs {path[:60]}, written from content fetched "
                       "or computed at run time", content)
        elif path.endswith(".py") or (content.text.startswith("#!") and "python" in
                                      content.text.split("\n", 1)[0]):
            self.run_python(content.text, line, depth + 1)
        else:
            self.run_shell(content.text, line, depth + 1)

    @staticmethod
    def _decodes(name: str, texts: list[str], stdin: Val | None) -> bool:
        """Whether the command turns encoded input into text (base64 -d, xxd -r, rev...)."""
        if name in ("base64", "base32", "basenc"):
            return any(t in ("-d", "--decode", "-D") or (
                t.startswith("-") and not t.startswith("--") and "d" in t) for t in texts)
        if name == "xxd":
            return any("r" in t for t in texts if t.startswith("-"))
        if name in ("gzip", "bzip2", "xz"):
            return any(t in ("-d", "--decompress", "-dc", "-cd") for t in texts)
        if name == "openssl":
            return any(t in ("-d", "base64", "enc") for t in texts)
        if name == "tr":
            return stdin is not None
        return name in ("rev", "uudecode", "gunzip", "zcat", "bunzip2", "unxz")

    # --- classes -------------------------------------------------------------------------

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
            if "://" in t or _looks_like_host(t) or "@" in t or "$" in t or "⟨" in t:
                words.append(a)
        return words

    def interpreter(self, name: str, args: list[Val], stdin: Val | None, line: int,
                    depth: int) -> None:
        shell = name in SHELLS
        py = is_python(name)
        if name in ("awk", "gawk", "mawk", "nawk"):
            program = next((a for a in args if not a.text.startswith("-")), None)
            if program is not None:
                self.script_code(name, program, line, depth)
            return
        code: Val | None = None
        script: Val | None = None
        flag = {"php": "-r", "node": "-e", "nodejs": "-e", "perl": "-e", "ruby": "-e",
                "deno": "eval", "bun": "-e", "lua": "-e", "osascript": "-e"}.get(name, "-c")
        i = 0
        while i < len(args):
            t = args[i].text
            if name in ("source", "."):
                script = args[i]
                break
            if t in (flag, "-E", "-c", "--eval", "-e", "--command", "eval") or (
                    shell and t.startswith("-") and not t.startswith("--") and "c" in t):
                code = args[i + 1] if i + 1 < len(args) else None
                break
            if t == "-m" and py:
                return
            if t in ("-", "-s", "/dev/stdin", "--"):
                break
            if t.startswith("-"):
                i += 1
                continue
            script = args[i]
            break
        if code is not None:
            if code.untrusted:
                self.event("fetch-exec", line, f"{name} runs code fetched or decoded at run "
                           "time "
                           f"({code.text[:60]})", code)
            elif shell:
                self.nested("shell", code, line, depth)
            elif py:
                self.nested("python", code, line, depth)
            else:
                self.script_code(name, code, line)
            return
        if script is not None:
            path = script.text.removeprefix("./")
            if script.untrusted:
                self.event("fetch-exec", line, f"{name} runs content computed or fetched at "
                           f"run time ({script.text[:60]})", script)
            elif path in self.fetched_files:
                self.event("fetch-exec", line, f"{name} runs the downloaded file {path[:60]}",
                           script, Val("", lines=self.fetched_files[path]))
            elif script.text in self.written or path in self.written:
                self._run_written(name, script.text if script.text in self.written else path,
                                  line, depth)
            elif script.text in ("/dev/stdin", "/proc/self/fd/0", "/dev/fd/0", "-") and \
                    stdin is not None:
                self._stdin_exec(name, stdin, line, depth, shell, py)
            return
        if stdin is not None:
            self._stdin_exec(name, stdin, line, depth, shell, py)

    def _stdin_exec(self, name: str, stdin: Val, line: int, depth: int, shell: bool,
                    py: bool) -> None:
        if stdin.untrusted:
            self.event("fetch-exec", line, f"pipes content fetched, decoded or computed at run "
                       f"time into {name}", stdin)
        elif shell:
            self.nested("shell", stdin, line, depth)
        elif py:
            self.nested("python", stdin, line, depth)
        else:
            self.script_code(name, stdin, line)

    def script_code(self, name: str, code: Val, line: int, depth: int = 0) -> None:
        """Perl, Ruby, Node, PHP, awk one-liners: sockets, HTTP clients, process spawns
        (a command line they hand to a shell is read as shell)."""
        text = code.text
        for m in re.finditer(r"(?:\b(?:system|exec|popen|spawn|execSync|shell_exec|passthru|"
                             r"proc_open|IO\.popen|%x)\s{0,5}\(?\s{0,5}|`)(['\"`])"
                             r"((?:(?!\1).){1,2000})\1", text):
            self.nested("shell", Val(m.group(2), code.taints, code.lines), line, depth)
        for m in re.finditer(r"`([^`]{1,2000})`", text):
            self.nested("shell", Val(m.group(1), code.taints, code.lines), line, depth)
        for m in re.finditer(r"\|\s{0,5}\"([^\"]{1,2000})\"\s{0,5}\)?\s{0,5};?\s{0,5}close|"
                             r"print\s{0,5}[^|]{0,200}\|\s{0,5}\"([^\"]{1,2000})\"", text):
            self.nested("shell", Val(m.group(1) or m.group(2), code.taints, code.lines),
                        line, depth)
        if re.search(r"(?i)\bsocket\b|IO::Socket|TCPSocket|UDPSocket|Net::HTTP|open-uri|"
                     r"LWP::|HTTP::Tiny|require\s{0,5}\(?\s{0,5}['\"](net|dgram|http|https|tls|"
                     r"child_process)['\"]|\bfetch\s{0,5}\(|fsockopen|curl_exec|"
                     r"file_get_contents\s{0,5}\(\s{0,5}['\"]https?:|\bconnect\s{0,5}\(|"
                     r"Deno\.connect|Bun\.connect|XMLHttpRequest|/dev/tcp/", text):
            hosts = re.findall(r"(?i)https?://([a-z0-9.-]{1,253})|['\"]([a-z0-9-]{1,63}"
                               r"(?:\.[a-z0-9-]{1,63}){1,8})['\"]|(\d{1,3}(?:\.\d{1,3}){3})",
                               text)
            names = [h for tup in hosts for h in tup if h]
            bad = [h for h in names if not self.ctx.host_allowed(h)]
            if bad or not names:
                self.event("net-egress", line, f"{name} one-liner opens a network connection "
                           f"to {', '.join(bad)[:80] or 'a host it computes'}", code)
        if re.search(r"\b(exec|system|spawn|popen|eval)\b", text) and re.search(
                r"(?i)socket|/bin/(ba)?sh|cmd\.exe|fetch\s{0,5}\(|get\(", text):
            self.event("fetch-exec", line, f"{name} one-liner runs a shell or fetched code",
                       code)
        if code.keys or "env" in code.taints or re.search(r"\bENV\b|process\.env|%ENV|getenv",
                                                          text):
            self.check_keys(name, [code], line, "a script one-liner")

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
