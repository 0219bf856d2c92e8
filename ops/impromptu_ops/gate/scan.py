"""Private: Evaluating the policy over a change: (installed tree, candidate tree, manifest) ->
findings.

Linear in the size of the candidate. A match counts only when it starts on an *added* line
(a line the installed version does not have at that place, per :mod:`.linediff`):

- ``line`` rules read each distinct added line once (``re.MULTILINE``; every policy
  quantifier is bounded, see :mod:`.policy`); ``combo`` rules read the whole file only when
  the change touches one of their sets; an added line over ``[gate] max_line_chars`` is a
  finding of its own and is read up to that length;
- prompt rules read a normalised text (:mod:`.text`) of every file that is not code;
- ``capability`` rules read shell and Python as code (:func:`code_events`: :mod:`.shell`,
  :mod:`.python_code`, :mod:`.capabilities`), in a forked child so that a parser crash is
  a finding and not the end of the gate;
- base64 and hex blobs on added lines are decoded (up to ``[gate] decode_depth`` levels)
  and read again; a finding inside one names the line the blob sits on.

:func:`visible` shows every control, format, bidi and invisible character as ``<U+XXXX>``:
excerpts and the rendered diff use it, so a reviewer sees what is really there.

This module judges; it does not load rules (:mod:`.policy`), render diffs (:mod:`.diff`) or
touch the disk (:mod:`.gate`).
"""

from __future__ import annotations

import base64
import binascii
import bisect
import dataclasses
import faulthandler
import fnmatch
import functools
import json
import os
import re
import select
import signal
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from impromptu_ops.gate import python_code, shell
from impromptu_ops.gate.capabilities import CommandJudge, Context, Event, code_kind
from impromptu_ops.gate.linediff import added_lines
from impromptu_ops.gate.manifest import Manifest, is_prompt_name, version_key
from impromptu_ops.gate.policy import (
    CONTENT_KINDS,
    MANIFEST_FILE,
    SEVERITIES,
    Finding,
    Policy,
    Rule,
)
from impromptu_ops.gate.text import Normalised, normalise
from impromptu_ops.gate.tree import EMPTY, Tree, TreeFile

_URL_HOST_RE: Final = re.compile(
    r"(?i)\b(?:https?|wss?|ftp|stratum\+(?:tcp|ssl|tls))://(?:[^@/\s\"'<>]{0,256}@)?"
    r"(\[[0-9a-f:]{2,45}\]|[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?)"
)
_URL_RE: Final = re.compile(r"(?i)\b(?:https?|wss?|ftp)://[^\s\"'<>(){}\[\]`]{1,2048}")
_IPV4_RE: Final = re.compile(r"\b(\d{1,3}(?:\.\d{1,3}){3})\b")
_DEVTCP_RE: Final = re.compile(r"/dev/(?:tcp|udp)/")
_B64_RE: Final = re.compile(r"[A-Za-z0-9+/]{16,}={0,2}|[A-Za-z0-9_-]{16,}={0,2}")
_HEX_RE: Final = re.compile(r"(?:\\x[0-9a-fA-F]{2}){8,}|\b(?:[0-9a-fA-F]{2}){12,}\b")
_SENTENCE_END: Final = re.compile(r"[.!?](?=\s|$)|\n")
_INVISIBLE: Final = frozenset("\u00ad\u180e\u3164\u115f\u1160\uffa0")
_HIDDEN_CATEGORIES: Final = frozenset({"Cc", "Cf", "Zl", "Zp", "Co", "Cs", "Cn"})


def visible(text: str, limit: int = 160) -> str:
    """``text`` with every control, format, bidi or invisible character shown as ``<U+XXXX>``.

    Args:
        text: any text.
        limit: longer results are cut to this many characters, ending with ``…``.
    """
    out: list[str] = []
    for ch in text[:limit + 1]:  # each character shows as at least one: the rest is cut
        if ch != "\t" and (unicodedata.category(ch) in _HIDDEN_CATEGORIES or ch in _INVISIBLE):
            out.append(f"<U+{ord(ch):04X}>")
        else:
            out.append(ch)
    shown = "".join(out)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def _text(f: TreeFile) -> tuple[str, bool]:
    try:
        return f.data.decode("utf-8"), False
    except UnicodeDecodeError:
        return f.data.decode("latin-1"), True


def _decode_blob(blob: str) -> str | None:
    raw: bytes | None = None
    if blob.startswith("\\x"):
        raw = bytes(int(h, 16) for h in re.findall(r"\\x([0-9a-fA-F]{2})", blob))
    elif re.fullmatch(r"[0-9a-fA-F]+", blob) and len(blob) % 2 == 0:
        raw = bytes.fromhex(blob)
    if raw is None:
        padded = blob + "=" * (-len(blob) % 4)
        for decoder in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                raw = decoder(padded)
                break
            except (binascii.Error, ValueError):
                continue
    if not raw:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    printable = sum(ch.isprintable() or ch in "\n\t\r" for ch in text)
    return text if printable >= 0.9 * len(text) else None


def decoded_payloads(text: str, min_chars: int, depth: int) -> Iterator[tuple[int, str]]:
    """``(offset, decoded text)`` for base64 or hex blobs in ``text``, up to ``depth`` levels.

    Nested payloads report the offset of the outermost blob.
    """
    if depth <= 0:
        return
    for m in [*_B64_RE.finditer(text), *_HEX_RE.finditer(text)]:
        if len(m.group(0)) < min_chars:
            continue
        decoded = _decode_blob(m.group(0))
        if decoded:
            yield m.start(), decoded
            for _off, inner in decoded_payloads(decoded, min_chars, depth - 1):
                yield m.start(), inner


def host_trusted(host: str, trusted: Iterable[str]) -> bool:
    host = host.lower().rstrip(".")
    return any(host == d or host.endswith("." + d) for d in trusted)


def hosts_in(text: str) -> set[str]:
    return {m.group(1).lower().rstrip(".") for m in _URL_HOST_RE.finditer(text)}


@dataclass(frozen=True)
class _Unit:
    """Text to scan: a changed file, or a payload decoded from one of its added lines."""

    path: str
    text: str
    added: frozenset[int]  # 0-based indexes of lines that are part of the change
    report_line: Callable[[int], int]
    via: str = ""

    @functools.cached_property
    def lines(self) -> list[str]:
        return self.text.split("\n")

    @functools.cached_property
    def starts(self) -> list[int]:
        out, pos = [], 0
        for line in self.lines:
            out.append(pos)
            pos += len(line) + 1
        return out

    def line_of(self, offset: int) -> int:
        return bisect.bisect_right(self.starts, offset) - 1

    @functools.cached_property
    def changed(self) -> tuple[str, list[int], list[tuple[int, ...]]]:
        """What the line rules read: each distinct added line once, in order (a file of
        N copies of one line is read once, not N times). ``(text, line starts, for each
        line of the text the original indexes it stands for)``."""
        where: dict[str, list[int]] = {}
        for i in sorted(self.added):
            if i < len(self.lines):
                where.setdefault(self.lines[i], []).append(i)
        parts = list(where)
        starts, pos = [], 0
        for line in parts:
            starts.append(pos)
            pos += len(line) + 1
        return "\n".join(parts), starts, [tuple(where[line]) for line in parts]

    def scan(self, pattern: re.Pattern[str], whole: bool) -> Iterator[int]:
        """Original line indexes where ``pattern``'s matches start, over the whole text or
        over :attr:`changed` only."""
        if whole:
            yield from (self.line_of(m.start()) for m in pattern.finditer(self.text))
            return
        text, starts, origin = self.changed
        for m in pattern.finditer(text):
            yield from origin[bisect.bisect_right(starts, m.start()) - 1]


def context_of(policy: Policy) -> Context:
    """The capability judge's view of the policy's allowlists."""
    return Context(egress_allow=policy.egress_allow, key_hosts=policy.key_hosts,
                   persistence_allow=policy.persistence_allow)


def code_events(path: str, text: str, ctx: Context, *, timeout: float = 60.0) -> list[Event]:
    """Capability events of a shell or Python file (``[]`` for other files).

    The reading runs in a forked child (where ``fork`` exists): the parsers are C code fed
    hostile input, and a crash or a hang there must become a finding (``unparseable``,
    fail closed), not the death of the gate. ``timeout`` bounds the child's work.
    """
    kind = code_kind(path, text)
    if not kind:
        return []
    if not hasattr(os, "fork"):  # pragma: no cover - every platform we support forks
        return _read_code(kind, text, ctx)
    events = _in_child(lambda: _read_code(kind, text, ctx), timeout)
    if events is None:
        return [Event("unparseable", 0, frozenset({0}),
                      "reading this file as code crashed or timed out: the gate cannot "
                      "tell what it runs (fail closed)")]
    return events


def _read_code(kind: str, text: str, ctx: Context) -> list[Event]:
    judge = CommandJudge(ctx)
    judge.run_shell = lambda t, line, depth: shell.analyse(t, judge, line, depth)
    judge.run_python = lambda t, line, depth: python_code.analyse(t, judge, line, depth)
    (shell.analyse if kind == "shell" else python_code.analyse)(text, judge)
    return judge.events


def _in_child(work: Callable[[], list[Event]], timeout: float) -> list[Event] | None:
    """``work()`` run in a forked child; ``None`` if it crashed, failed or ran too long."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: do the work, send JSON, leave without running any cleanup
        code = 1
        try:
            os.close(rfd)
            faulthandler.disable()  # a crash here is reported by the parent, in one line
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 2)
            body = json.dumps([[e.cls, e.line, sorted(e.lines), e.message]
                               for e in work()]).encode("utf-8")
            view = memoryview(body)
            while view:
                view = view[os.write(wfd, view):]
            code = 0
        finally:
            os._exit(code)
    os.close(wfd)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([rfd], [], [], left)[0]:
                os.kill(pid, signal.SIGKILL)
                break
            chunk = os.read(rfd, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(rfd)
        _pid, status = os.waitpid(pid, 0)
    if not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0):
        return None
    try:
        rows = json.loads(b"".join(chunks))
        return [Event(str(c), int(line), frozenset(int(x) for x in lines), str(m))
                for c, line, lines, m in rows]
    except (ValueError, TypeError):
        return None


def _constant(n: int) -> Callable[[int], int]:
    return lambda _i: n


def _added_lines(old: list[str], new: list[str]) -> frozenset[int]:
    return added_lines(old, new)


class _Evaluator:
    def __init__(self, policy: Policy, old: Tree, prompts: frozenset[str]) -> None:
        self.p = policy
        self.prompts = prompts
        self.old_hosts: set[str] = set()
        self.old_urls: set[str] = set()
        for path in old:
            f = old.get(path)
            if f is not None:
                text = _text(f)[0]
                self.old_hosts |= hosts_in(text)
                self.old_urls.update(m.group(0) for m in _URL_RE.finditer(text))
        self.findings: list[Finding] = []
        self._count: dict[tuple[str, str], int] = {}
        self._cache: dict[tuple[object, int, bool], frozenset[int]] = {}

    def add(self, rule: Rule, path: str, line: int, message: str, excerpt: str = "") -> None:
        key = (rule.id, path)
        self._count[key] = self._count.get(key, 0) + 1
        if self._count[key] <= self.p.max_findings_per_rule:
            self.findings.append(Finding(rule.id, rule.severity, path, line, message,
                                         visible(excerpt)))

    # --- matching --------------------------------------------------------------------------

    def _lines_matching(self, key: object, u: _Unit, patterns: tuple[re.Pattern[str], ...],
                        whole: bool = False) -> frozenset[int]:
        """Indexes of the lines of ``u`` where any pattern's match starts (cached per unit);
        only the changed lines are read unless ``whole``."""
        ck = (key, id(u), whole)
        if ck not in self._cache:
            hit: set[int] = set()
            for pat in patterns:
                hit.update(u.scan(pat, whole))
            self._cache[ck] = frozenset(hit)
        return self._cache[ck]

    def _untrusted_lines(self, u: _Unit, whole: bool) -> frozenset[int]:
        ck = ("@untrusted-host", id(u), whole)
        if ck not in self._cache:
            text, starts, origin = (u.text, u.starts, [(i,) for i in range(len(u.lines))]) \
                if whole else u.changed
            offsets: list[int] = []
            offsets += [m.start() for m in _URL_HOST_RE.finditer(text)
                        if not host_trusted(m.group(1), self.p.trusted_domains)]
            offsets += [m.start() for m in _IPV4_RE.finditer(text)
                        if not m.group(1).startswith("127.")]
            offsets += [m.start() for m in _DEVTCP_RE.finditer(text)]
            self._cache[ck] = frozenset(
                i for o in offsets for i in origin[bisect.bisect_right(starts, o) - 1])
        return self._cache[ck]

    def _set_lines(self, name: str, u: _Unit, whole: bool = False) -> frozenset[int]:
        if name == "@untrusted-host":
            return self._untrusted_lines(u, whole)
        return self._lines_matching(("set", name), u, self.p.sets[name], whole)

    # --- per file ----------------------------------------------------------------------------

    def units(self, path: str, text: str, added: frozenset[int]) -> list[_Unit]:
        unit = _Unit(path, text, added, lambda i: i + 1)
        units = [unit]
        for off, payload in decoded_payloads(text, self.p.decode_min_chars,
                                             self.p.decode_depth):
            line = unit.line_of(off)
            if line in added:
                plines = payload.count("\n") + 1
                units.append(_Unit(path, payload, frozenset(range(plines)),
                                   _constant(line + 1),
                                   f" (in a blob decoded from line {line + 1})"))
        return units

    def run_file(self, path: str, old: TreeFile | None, new: TreeFile) -> None:
        new_text, binary = _text(new)
        old_lines = _text(old)[0].split("\n") if old is not None else []
        added = _added_lines(old_lines, new_text.split("\n"))
        is_prompt = path in self.prompts or (not binary and not code_kind(path, new_text))
        limit = self.p.max_line_chars
        lines = new_text.split("\n")
        long_lines = [i for i in sorted(added) if len(lines[i]) > limit]
        if long_lines:
            # A line nobody can review: a finding, and the rules read its first part only,
            # so that one 1 MiB line cannot make every bounded regex crawl.
            new_text = "\n".join(x[:limit] for x in lines)
        units = self.units(path, new_text, added)
        self._cache = {}  # keyed by id(unit): valid only while these units live
        self._events: list[Event] | None = None
        self._norms: dict[int, Normalised] = {}
        for rule in self.p.rules:
            if rule.applies_to == "prompt" and not is_prompt:
                continue
            if rule.kind == "line" and rule.applies_to == "prompt":
                for u in units if not binary else ():
                    self._prompt(rule, u)
            elif rule.kind == "line" and not (binary and rule.text_only):
                for u in units:
                    self._line(rule, u)
            elif rule.kind == "combo":
                for u in units:
                    self._combo(rule, u)
            elif rule.kind == "path" and old is None:
                name = path.rsplit("/", 1)[-1].lower()
                if any(fnmatch.fnmatch(name, g.lower()) or fnmatch.fnmatch(path.lower(),
                                                                            g.lower())
                       for g in rule.globs):
                    self.add(rule, path, 0, f"{rule.summary}: new file {path}")
            elif rule.kind == "new-file" and old is None:
                self.add(rule, path, 0, f"{rule.summary}: {path} ({len(new.data)} bytes)")
            elif rule.kind == "new-executable" and new.executable and (
                old is None or not old.executable
            ):
                how = "new executable" if old is None else "became executable"
                self.add(rule, path, 0, f"{rule.summary}: {path} {how} (mode {new.mode:o})")
            elif rule.kind == "binary" and binary:
                self.add(rule, path, 0, f"{rule.summary}: {path} is not UTF-8 text")
            elif rule.kind == "new-domain":
                self._domains(rule, units[0])
            elif rule.kind == "new-url":
                self._urls(rule, units[0])
            elif rule.kind == "capability" and not binary:
                self._capability(rule, units[0])
            elif rule.kind == "long-line" and long_lines:
                self.add(rule, path, long_lines[0] + 1,
                         f"{rule.summary}: {len(long_lines)} added line(s) longer than "
                         f"{limit} characters (the longest: "
                         f"{max(len(lines[i]) for i in long_lines)})")

    def _prompt(self, rule: Rule, u: _Unit) -> None:
        """A prompt rule over the normalised text (NFKC, invisibles dropped, look-alikes
        folded, lines joined): a match counts when any line it spans is part of the
        change; ``unless`` is read in the sentence that holds the match."""
        norm = self._norms.get(id(u))
        if norm is None:
            norm = self._norms[id(u)] = normalise(u.text)
        hits: dict[int, str] = {}
        for pat in rule.patterns:
            for m in pat.finditer(norm.text):
                first = u.line_of(norm.source_offset(m.start()))
                last = u.line_of(norm.source_offset(max(m.end() - 1, m.start())))
                if first in hits or not any(i in u.added for i in range(first, last + 1)):
                    continue
                starts = [b.end() for b in _SENTENCE_END.finditer(norm.text, 0, m.start())]
                begin = starts[-1] if starts else 0
                after = _SENTENCE_END.search(norm.text, m.end())
                sentence = norm.text[begin:after.start() if after else len(norm.text)]
                if any(x.search(sentence) for x in rule.unless):
                    continue
                hits[first] = sentence
        for i in sorted(hits):
            self.add(rule, u.path, u.report_line(i), f"{rule.summary}{u.via}",
                     hits[i] if i >= len(u.lines) or hits[i].strip() != u.lines[i].strip()
                     else u.lines[i])

    def _capability(self, rule: Rule, u: _Unit) -> None:
        if self._events is None:
            if len(u.text) > self.p.max_code_bytes and code_kind(u.path, u.text):
                self._events = [Event("unparseable", 0, frozenset({0}),
                                      f"code file larger than max_code_bytes "
                                      f"({self.p.max_code_bytes}): too large to read as code")]
            else:
                self._events = code_events(u.path, u.text, context_of(self.p),
                                           timeout=self.p.code_read_seconds)
        seen: set[tuple[int, str]] = set()
        for ev in self._events:
            if ev.cls not in rule.capabilities or (
                    not ev.lines & u.added and ev.cls != "unparseable"):
                continue
            line = min(max(ev.line, 0), len(u.lines) - 1)
            if (line, ev.message) in seen:
                continue
            seen.add((line, ev.message))
            self.add(rule, u.path, line + 1, f"{rule.summary}: {ev.message}", u.lines[line])

    def run_version(self, candidate: Manifest, installed: Manifest | None) -> None:
        for rule in self.p.rules:
            if rule.kind != "version-jump":
                continue
            new = version_key(candidate.version)[0][:3]
            old = version_key(installed.version)[0][:3] if installed else (0, 0, 0)
            bound = rule.max_jump if installed else rule.max_first
            for part, (a, b, limit) in enumerate(zip(old, new, bound, strict=True)):
                if a == b:
                    continue
                if b - a > limit:
                    what = ("major", "minor", "patch")[part]
                    self.add(rule, MANIFEST_FILE, 0,
                             f"{rule.summary}: {installed.version if installed else 'nothing'}"
                             f" -> {candidate.version} jumps the {what} version by {b - a} "
                             f"(bound {limit})", candidate.version)
                break

    def _line(self, rule: Rule, u: _Unit) -> None:
        for i in sorted(self._lines_matching(("rule", rule.id), u, rule.patterns) & u.added):
            line = u.lines[i]
            if any(x.search(line) for x in rule.unless):
                continue
            self.add(rule, u.path, u.report_line(i), f"{rule.summary}{u.via}", line)

    def _combo(self, rule: Rule, u: _Unit) -> None:
        # A finding needs an added line in some set: look at the change first, and read
        # the whole file (for the window) only when there is one.
        if not any(self._set_lines(name, u) & u.added for name in rule.all_of):
            return
        hits = {name: self._set_lines(name, u, whole=True) for name in rule.all_of}
        n_lines = len(u.lines)

        def span(i: int) -> range:
            if rule.window < 0:
                return range(n_lines)
            return range(max(0, i - rule.window), min(n_lines, i + rule.window + 1))

        def in_span(name: str, i: int) -> bool:
            h = hits[name]
            return bool(h) if rule.window < 0 else any(j in h for j in span(i))

        touched = sorted(u.added & frozenset().union(*hits.values()))
        # A line that matches every set by itself is the culprit; its neighbours are not
        # reported again for the same window.
        covered: set[int] = set()
        for i in touched:
            if all(i in hits[n] for n in rule.all_of):
                self.add(rule, u.path, u.report_line(i), f"{rule.summary}{u.via}", u.lines[i])
                covered.update(span(i))
        for i in touched:
            if i not in covered and all(in_span(n, i) for n in rule.all_of):
                self.add(rule, u.path, u.report_line(i), f"{rule.summary}{u.via}", u.lines[i])

    def _domains(self, rule: Rule, u: _Unit) -> None:
        seen: set[str] = set()
        for m in _URL_HOST_RE.finditer(u.text):
            i = u.line_of(m.start())
            host = m.group(1).lower().rstrip(".")
            if i not in u.added or host in self.old_hosts or host in seen:
                continue
            seen.add(host)
            trust = "trusted" if host_trusted(host, self.p.trusted_domains) else "untrusted"
            self.add(rule, u.path, i + 1, f"{rule.summary}: {host} ({trust})", u.lines[i])

    def _urls(self, rule: Rule, u: _Unit) -> None:
        seen: set[str] = set()
        for m in _URL_RE.finditer(u.text):
            i = u.line_of(m.start())
            url = m.group(0)
            hosts = hosts_in(url)
            if (i not in u.added or url in self.old_urls or url in seen
                    or not hosts or not hosts <= self.old_hosts):
                continue  # a URL on a new host is reported by new-domain
            seen.add(url)
            self.add(rule, u.path, i + 1, f"{rule.summary}: {visible(url, 120)}", u.lines[i])

    def run_manifest(self, raw: Mapping[str, Any]) -> None:
        rules = [r for r in self.p.rules if r.kind == "manifest-key"]

        def walk(obj: Any, where: str) -> Iterator[tuple[str, str]]:
            if isinstance(obj, Mapping):
                for k, v in obj.items():
                    if where == "" and k == "files":
                        continue  # file entries are strictly parsed: no extra keys at all
                    here = f"{where}.{k}" if where else str(k)
                    yield str(k), here
                    yield from walk(v, here)
            elif isinstance(obj, list):
                for i, v in enumerate(obj):
                    yield from walk(v, f"{where}[{i}]")

        for key, where in walk(raw, "") if rules else ():
            for rule in rules:
                if key.casefold() in rule.keys:
                    self.add(rule, MANIFEST_FILE, 0, f"{rule.summary}: manifest key {where}",
                             where)


def _order(f: Finding) -> tuple[int, str, int, str]:
    return (SEVERITIES.index(f.severity), f.path, f.line, f.rule)


def evaluate(policy: Policy, old: Tree, new: Tree, manifest: Manifest | None = None,
             installed_manifest: Manifest | None = None) -> list[Finding]:
    """Judge the change from ``old`` to ``new``: every finding, deny first.

    Args:
        policy: the loaded rules.
        old: the installed tree (``EMPTY`` for a first install).
        new: the candidate tree.
        manifest: the candidate's manifest (prompt marks, lifecycle keys, version).
        installed_manifest: the installed version's manifest (for the version-jump rule).
    """
    prompts = manifest.prompt_paths if manifest else frozenset(
        p for p in new if is_prompt_name(p))
    ev = _Evaluator(policy, old, prompts)
    for path in new:
        nf = new.get(path)
        of = old.get(path)
        if nf is None or (of is not None and of.data == nf.data and of.mode == nf.mode):
            continue
        ev.run_file(path, of, nf)
    if manifest is not None:
        ev.run_manifest(manifest.raw)
        ev.run_version(manifest, installed_manifest)
    return sorted(ev.findings, key=_order)


def screen_text(policy: Policy, text: str, name: str = "-") -> list[Finding]:
    """Run the content rules (line, combo) on ``text`` as if it were a new prompt file."""
    content = dataclasses.replace(
        policy, rules=tuple(r for r in policy.rules if r.kind in CONTENT_KINDS))
    new = Tree({name: TreeFile(text.encode("utf-8", "replace"), 0o644)})
    ev = _Evaluator(content, EMPTY, frozenset({name}))
    ev.run_file(name, None, new.files[name])
    return sorted(ev.findings, key=_order)
