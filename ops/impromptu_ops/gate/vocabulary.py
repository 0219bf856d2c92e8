"""Private: the capability vocabulary of the update gate: classes, tool names, values, events. Pure.

:data:`CLASSES` names what code can do (see :mod:`.capabilities`); the tool sets name the
commands of each kind; :class:`Val` is a normalised word with its taints, :class:`Event` a
finding, :class:`Context` the policy's allowlists; :func:`parse_http` reads curl and wget
arguments. Nothing here judges: :class:`~.capabilities.CommandJudge` does.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
import urllib.parse
from collections.abc import Iterable, Mapping
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
KEY_SAFE: Final = frozenset({"[", "[[", "test", ":", "export", "local", "readonly", "declare",
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


def looks_like_host(word: str) -> bool:
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
