"""Private: What code can do, judged from its commands: the capability classes of the update gate
(pure).

:mod:`.shell` (tree-sitter) and :mod:`.python_code` (``ast``) turn a file into commands whose
words are already normalised (quotes, escapes, ``${IFS}``, printf and ``$'..'`` literals,
command substitutions and simple variable flows resolved). :class:`CommandJudge` classifies
each command and records an :class:`~.vocabulary.Event` in one of
:data:`~.vocabulary.CLASSES` (the vocabulary: :mod:`.vocabulary`; the record and the direct
effects: :mod:`.effects`; the dispatch and code run again: here):

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

import re

from impromptu_ops.gate.effects import EffectRecorder
from impromptu_ops.gate.vocabulary import (
    DNS_TOOLS,
    INTERPRETERS,
    KEY_FILES,
    KEY_SAFE,
    NET_TOOLS,
    SHELLS,
    WRAPPERS,
    Event,
    Val,
    basename,
    home_path,
    is_python,
    join,
)


class CommandJudge(EffectRecorder):
    """Classifies commands in the order a file runs them; keeps what earlier lines did."""

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
        if name not in NET_TOOLS and name not in DNS_TOOLS and name not in KEY_SAFE and not (
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
            self._exec_text(name, code, line, depth, shell, py,
                            f"{name} runs code fetched or decoded at run time "
                            f"({code.text[:60]})")
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
        self._exec_text(name, stdin, line, depth, shell, py,
                        f"pipes content fetched, decoded or computed at run time into {name}")

    def _exec_text(self, name: str, text: Val, line: int, depth: int, shell: bool, py: bool,
                   untrusted_note: str) -> None:
        """Code an interpreter runs from text (``-c CODE`` or stdin): fetched or decoded text
        is a fetch-exec; known text is read again as shell, Python or a one-liner."""
        if text.untrusted:
            self.event("fetch-exec", line, untrusted_note, text)
        elif shell:
            self.nested("shell", text, line, depth)
        elif py:
            self.nested("python", text, line, depth)
        else:
            self.script_code(name, text, line)

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
