"""The update policy: rules loaded from TOML (data), evaluated over a change (pure).

A :class:`Policy` is a list of small rules. Each rule has an ``id``, a ``severity``
(``deny`` or ``warn``) and a ``kind``, one of a fixed set of matchers; what each rule looks
for (regexes, globs, manifest keys, domains) is data in ``policies/update-gate.toml``:

==================  =========================================================================
kind                matches
==================  =========================================================================
``line``            a regex on an *added* line (also inside base64/hex blobs decoded from
                    added lines), skipped when an ``unless`` regex matches the same line
``combo``           every named pattern set of ``all_of`` matches within ``window`` lines of
                    an added line (``-1``: anywhere in the file), one of them on that line
``path``            a glob on the name of a file that is new in the candidate
``new-file``        any file that is new in the candidate
``new-executable``  a new executable file, or an existing file that gained an x bit
``binary``          an added or changed file that is not UTF-8 text
``new-domain``      a URL host on an added line that appears nowhere in the installed tree
``manifest-key``    a key in the manifest (top level or nested) such as a lifecycle hook
==================  =========================================================================

Rules are evaluated on the change itself: lines that exist unchanged in the installed
version are context, never findings. ``applies_to = "prompt"`` restricts a rule to files
that become system prompts (SKILL.md, HEARTBEAT.md, anything the manifest marks
``prompt``); :func:`screen_text` runs the content rules on any text as if it were one.

A combo set whose name starts with ``@`` is a built-in matcher: ``@untrusted-host`` matches
a line naming a network host outside ``[gate] trusted_domains`` (a URL, a raw IP address,
``/dev/tcp/...``).

This module is pure: text in, :class:`Finding` values out. Overrides, approvals and the
audit log are the business of :mod:`.gate`.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import fnmatch
import hashlib
import re
import tomllib
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from impromptu_ops.errors import ConfigError
from impromptu_ops.gate.manifest import Manifest, is_prompt_name
from impromptu_ops.gate.tree import EMPTY, Tree, TreeFile

SEVERITIES: Final = ("deny", "warn")
KINDS: Final = (
    "line", "combo", "path", "new-file", "new-executable", "binary", "new-domain",
    "manifest-key",
)
CONTENT_KINDS: Final = frozenset({"line", "combo"})
MANIFEST_FILE: Final = "impromptu.skill.json"

_RULE_KEYS: Final = frozenset({
    "id", "severity", "kind", "summary", "applies_to", "patterns", "unless", "globs",
    "all_of", "window", "keys", "text_only", "example",
})
_EXAMPLE_KEYS: Final = frozenset({
    "match", "path", "text", "hex", "old", "mode", "old_mode", "manifest",
})
_URL_HOST_RE: Final = re.compile(
    r"(?i)\b(?:https?|wss?|ftp|stratum\+(?:tcp|ssl|tls))://(?:[^@/\s\"'<>]*@)?"
    r"(\[[0-9a-f:]+\]|[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?)"
)
_IPV4_RE: Final = re.compile(r"\b(\d{1,3}(?:\.\d{1,3}){3})\b")
_DEVTCP_RE: Final = re.compile(r"/dev/(?:tcp|udp)/")
_B64_RE: Final = re.compile(r"[A-Za-z0-9+/]{16,}={0,2}|[A-Za-z0-9_-]{16,}={0,2}")
_HEX_RE: Final = re.compile(r"(?:\\x[0-9a-fA-F]{2}){8,}|\b(?:[0-9a-fA-F]{2}){12,}\b")


def visible(text: str, limit: int = 160) -> str:
    """``text`` with every control, format, bidi or invisible character shown as ``<U+XXXX>``.

    Used for excerpts and the rendered diff, so that what a reviewer sees is what is there
    (no terminal escapes, no hidden characters, no reordered text).
    """
    out: list[str] = []
    for ch in text:
        if ch == "\t":
            out.append(ch)
        elif unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Co", "Cs", "Cn") or ch in (
            "\u00ad", "\u180e", "\u3164", "\u115f", "\u1160", "\uffa0",
        ):
            out.append(f"<U+{ord(ch):04X}>")
        else:
            out.append(ch)
    shown = "".join(out)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


@dataclass(frozen=True)
class Finding:
    """One policy finding: which rule, where, and what."""

    rule: str
    severity: str
    path: str
    line: int  # 1-based; 0 = the file (or manifest) as a whole
    message: str
    excerpt: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "severity": self.severity, "path": self.path,
                "line": self.line, "message": self.message, "excerpt": self.excerpt}

    def where(self) -> str:
        return f"{self.path}:{self.line}" if self.line else self.path


@dataclass(frozen=True)
class Example:
    """A worked example of a rule, kept in the policy file and checked by the tests."""

    match: bool
    path: str = "install.sh"
    text: str = ""
    data: bytes | None = None  # raw bytes (``hex = "..."`` in the file) instead of text
    old: str | None = None
    mode: int = 0o644
    old_mode: int | None = None
    manifest: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Rule:
    id: str
    severity: str
    kind: str
    summary: str
    applies_to: str = "any"
    patterns: tuple[re.Pattern[str], ...] = ()
    unless: tuple[re.Pattern[str], ...] = ()
    globs: tuple[str, ...] = ()
    all_of: tuple[str, ...] = ()
    window: int = 0
    keys: frozenset[str] = frozenset()
    text_only: bool = False
    examples: tuple[Example, ...] = ()


@dataclass(frozen=True)
class Policy:
    rules: tuple[Rule, ...]
    sets: Mapping[str, tuple[re.Pattern[str], ...]] = field(default_factory=dict)
    trusted_domains: tuple[str, ...] = ()
    decode_min_chars: int = 24
    decode_depth: int = 2
    max_findings_per_rule: int = 20
    sha256: str = ""

    def only(self, rule_id: str) -> Policy:
        """The same policy with just one rule (for the policy's own tests)."""
        return Policy(tuple(r for r in self.rules if r.id == rule_id), self.sets,
                      self.trusted_domains, self.decode_min_chars, self.decode_depth,
                      self.max_findings_per_rule, self.sha256)

    def rule(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)


# --- loading ----------------------------------------------------------------------------------


def _regexes(where: str, raw: object) -> tuple[re.Pattern[str], ...]:
    if not isinstance(raw, list) or not all(isinstance(p, str) for p in raw):
        raise ConfigError(f"{where}: expected a list of regex strings")
    out = []
    for p in raw:
        try:
            out.append(re.compile(p))
        except re.error as exc:
            raise ConfigError(f"{where}: bad regex {p[:60]!r}: {exc}") from None
    return tuple(out)


def _mode(where: str, raw: object) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and re.fullmatch(r"0?[0-7]{3}", raw):
        return int(raw, 8)
    raise ConfigError(f"{where}: mode must be an octal string like \"0755\"")


def _example(where: str, raw: object) -> Example:
    if not isinstance(raw, dict) or set(raw) - _EXAMPLE_KEYS or "match" not in raw:
        raise ConfigError(f"{where}: an example needs match and only {sorted(_EXAMPLE_KEYS)}")
    manifest = raw.get("manifest")
    return Example(
        match=bool(raw["match"]),
        path=str(raw.get("path", "install.sh")),
        text=str(raw.get("text", "")),
        data=bytes.fromhex(str(raw["hex"])) if "hex" in raw else None,
        old=None if raw.get("old") is None else str(raw["old"]),
        mode=_mode(where, raw.get("mode", "0644")),
        old_mode=None if raw.get("old_mode") is None else _mode(where, raw["old_mode"]),
        manifest=manifest if isinstance(manifest, dict) else None,
    )


def _rule(i: int, raw: object, sets: Mapping[str, object]) -> Rule:
    where = f"policy rule #{i + 1}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: not a table")
    extra = set(raw) - _RULE_KEYS
    if extra:
        raise ConfigError(f"{where}: unknown keys {sorted(extra)}")
    rid = raw.get("id")
    if not isinstance(rid, str) or not re.fullmatch(r"[a-z0-9][a-z0-9-]{1,60}", rid):
        raise ConfigError(f"{where}: id must be a short lowercase name")
    where = f"policy rule {rid}"
    severity, kind = raw.get("severity"), raw.get("kind")
    if severity not in SEVERITIES:
        raise ConfigError(f"{where}: severity must be one of {SEVERITIES}")
    if kind not in KINDS:
        raise ConfigError(f"{where}: kind must be one of {KINDS}")
    applies_to = raw.get("applies_to", "any")
    if applies_to not in ("any", "prompt"):
        raise ConfigError(f"{where}: applies_to must be any or prompt")
    all_of = tuple(raw.get("all_of", ()))
    for name in all_of:
        if not (name.startswith("@") and name == "@untrusted-host") and name not in sets:
            raise ConfigError(f"{where}: all_of names unknown set {name!r}")
    rule = Rule(
        id=rid, severity=str(severity), kind=str(kind), summary=str(raw.get("summary", rid)),
        applies_to=str(applies_to),
        patterns=_regexes(f"{where}.patterns", raw.get("patterns", [])),
        unless=_regexes(f"{where}.unless", raw.get("unless", [])),
        globs=tuple(str(g) for g in raw.get("globs", ())),
        all_of=all_of, window=int(raw.get("window", 0)),
        keys=frozenset(str(k).casefold() for k in raw.get("keys", ())),
        text_only=bool(raw.get("text_only", False)),
        examples=tuple(_example(f"{where} example", e) for e in raw.get("example", ())),
    )
    needs = {"line": rule.patterns, "combo": rule.all_of, "path": rule.globs,
             "manifest-key": rule.keys}
    if kind in needs and not needs[str(kind)]:
        raise ConfigError(f"{where}: kind {kind} needs its patterns/all_of/globs/keys")
    return rule


def load_policy(text: str, name: str = "update-gate.toml") -> Policy:
    """Parse a policy file.

    Raises:
        ConfigError: bad TOML, unknown keys, bad regexes, duplicate rule ids.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"policy {name}: {exc}") from None
    extra = set(data) - {"gate", "sets", "rule"}
    if extra:
        raise ConfigError(f"policy {name}: unknown tables {sorted(extra)}")
    gate = data.get("gate", {})
    raw_sets = data.get("sets", {})
    sets = {k: _regexes(f"policy set {k}", v) for k, v in raw_sets.items()}
    rules = tuple(_rule(i, r, raw_sets) for i, r in enumerate(data.get("rule", [])))
    ids = [r.id for r in rules]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"policy {name}: duplicate rule ids")
    return Policy(
        rules=rules, sets=sets,
        trusted_domains=tuple(str(d).lower() for d in gate.get("trusted_domains", ())),
        decode_min_chars=int(gate.get("decode_min_chars", 24)),
        decode_depth=int(gate.get("decode_depth", 2)),
        max_findings_per_rule=int(gate.get("max_findings_per_rule", 20)),
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
    )


# --- evaluation -----------------------------------------------------------------------------


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


def decoded_payloads(line: str, min_chars: int, depth: int) -> Iterator[str]:
    """Text hidden in base64 or hex blobs on ``line``, decoded up to ``depth`` levels."""
    if depth <= 0:
        return
    for m in list(_B64_RE.finditer(line)) + list(_HEX_RE.finditer(line)):
        if len(m.group(0)) < min_chars:
            continue
        text = _decode_blob(m.group(0))
        if text:
            yield text
            for inner in text.splitlines():
                yield from decoded_payloads(inner, min_chars, depth - 1)


@dataclass(frozen=True)
class _Unit:
    """Lines to scan: a file's text, or a payload decoded from one of its added lines."""

    path: str
    lines: tuple[str, ...]
    added: frozenset[int]  # 0-based indexes of lines that are part of the change
    report_line: Callable[[int], int]
    via: str = ""


def _constant(n: int) -> Callable[[int], int]:
    return lambda _i: n


def _added_lines(old: list[str], new: list[str]) -> frozenset[int]:
    sm = difflib.SequenceMatcher(None, old, new, autojunk=False)
    added: set[int] = set()
    for tag, _i1, _i2, j1, j2 in sm.get_opcodes():
        if tag in ("insert", "replace"):
            added.update(range(j1, j2))
    return frozenset(added)


def host_trusted(host: str, trusted: Iterable[str]) -> bool:
    host = host.lower().rstrip(".")
    return any(host == d or host.endswith("." + d) for d in trusted)


def hosts_in(text: str) -> set[str]:
    return {m.group(1).lower().rstrip(".") for m in _URL_HOST_RE.finditer(text)}


def _untrusted_host(line: str, trusted: tuple[str, ...]) -> bool:
    if any(not host_trusted(h, trusted) for h in hosts_in(line)):
        return True
    if _DEVTCP_RE.search(line):
        return True
    return any(not ip.startswith("127.") for ip in _IPV4_RE.findall(line))


class _Evaluator:
    def __init__(self, policy: Policy, old: Tree, new: Tree, prompts: frozenset[str]) -> None:
        self.p = policy
        self.old = old
        self.new = new
        self.prompts = prompts
        self.old_hosts: set[str] = set()
        for path in old:
            f = old.get(path)
            if f is not None:
                self.old_hosts |= hosts_in(_text(f)[0])
        self.findings: list[Finding] = []
        self._count: dict[tuple[str, str], int] = {}

    def add(self, rule: Rule, path: str, line: int, message: str, excerpt: str = "") -> None:
        key = (rule.id, path)
        self._count[key] = self._count.get(key, 0) + 1
        if self._count[key] > self.p.max_findings_per_rule:
            return
        self.findings.append(Finding(rule.id, rule.severity, path, line, message,
                                     visible(excerpt)))

    def units(self, path: str, lines: list[str], added: frozenset[int]) -> list[_Unit]:
        units = [_Unit(path, tuple(lines), added, lambda i: i + 1)]
        for i in sorted(added):
            for payload in decoded_payloads(lines[i], self.p.decode_min_chars,
                                            self.p.decode_depth):
                plines = tuple(payload.splitlines()) or ("",)
                units.append(_Unit(path, plines, frozenset(range(len(plines))),
                                   _constant(i + 1), f" (in a blob decoded from line {i + 1})"))
        return units

    def run_file(self, path: str, old: TreeFile | None, new: TreeFile) -> None:
        new_text, binary = _text(new)
        old_lines = _text(old)[0].split("\n") if old is not None else []
        lines = new_text.split("\n")
        added = _added_lines(old_lines, lines)
        is_prompt = path in self.prompts
        units = self.units(path, lines, added)
        for rule in self.p.rules:
            if rule.applies_to == "prompt" and not is_prompt:
                continue
            if rule.kind == "line" and not (binary and rule.text_only):
                for u in units:
                    self._line(rule, u)
            elif rule.kind == "combo":
                for u in units:
                    self._combo(rule, u)
            elif rule.kind == "path" and old is None:
                name = path.rsplit("/", 1)[-1]
                if any(fnmatch.fnmatch(name.lower(), g.lower())
                       or fnmatch.fnmatch(path.lower(), g.lower()) for g in rule.globs):
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
                self._domains(rule, path, lines, added)

    def _line(self, rule: Rule, u: _Unit) -> None:
        for i in sorted(u.added):
            line = u.lines[i]
            if any(x.search(line) for x in rule.unless):
                continue
            for pat in rule.patterns:
                if pat.search(line):
                    self.add(rule, u.path, u.report_line(i), f"{rule.summary}{u.via}", line)
                    break

    def _set_hits(self, name: str, line: str) -> bool:
        if name == "@untrusted-host":
            return _untrusted_host(line, self.p.trusted_domains)
        return any(p.search(line) for p in self.p.sets[name])

    def _combo(self, rule: Rule, u: _Unit) -> None:
        hits = {name: [self._set_hits(name, ln) for ln in u.lines] for name in rule.all_of}

        def span(i: int) -> tuple[int, int]:
            if rule.window < 0:
                return 0, len(u.lines)
            return max(0, i - rule.window), min(len(u.lines), i + rule.window + 1)

        # A line that matches every set by itself is the culprit; its neighbours are not
        # reported again for the same window.
        whole = [i for i in sorted(u.added) if all(hits[n][i] for n in rule.all_of)]
        covered: set[int] = set()
        for i in whole:
            self.add(rule, u.path, u.report_line(i), f"{rule.summary}{u.via}", u.lines[i])
            covered.update(range(*span(i)))
        for i in sorted(u.added):
            if i in covered or not any(hits[n][i] for n in rule.all_of):
                continue
            lo, hi = span(i)
            if all(any(hits[n][lo:hi]) for n in rule.all_of):
                self.add(rule, u.path, u.report_line(i), f"{rule.summary}{u.via}", u.lines[i])

    def _domains(self, rule: Rule, path: str, lines: list[str], added: frozenset[int]) -> None:
        seen: set[str] = set()
        for i in sorted(added):
            for host in sorted(hosts_in(lines[i]) - self.old_hosts - seen):
                seen.add(host)
                trust = "trusted" if host_trusted(host, self.p.trusted_domains) else "untrusted"
                self.add(rule, path, i + 1, f"{rule.summary}: {host} ({trust})", lines[i])

    def run_manifest(self, raw: Mapping[str, Any]) -> None:
        rules = [r for r in self.p.rules if r.kind == "manifest-key"]
        if not rules:
            return

        def walk(obj: Any, where: str) -> Iterator[tuple[str, str]]:
            if isinstance(obj, Mapping):
                for k, v in obj.items():
                    if where == "" and k == "files":
                        continue
                    yield str(k), f"{where}.{k}" if where else str(k)
                    yield from walk(v, f"{where}.{k}" if where else str(k))
            elif isinstance(obj, list):
                for i, v in enumerate(obj):
                    yield from walk(v, f"{where}[{i}]")

        for key, where in walk(raw, ""):
            for rule in rules:
                if key.casefold() in rule.keys:
                    self.add(rule, MANIFEST_FILE, 0, f"{rule.summary}: manifest key {where}",
                             where)


def _order(f: Finding) -> tuple[int, str, int, str]:
    return (SEVERITIES.index(f.severity), f.path, f.line, f.rule)


def evaluate(policy: Policy, old: Tree, new: Tree, manifest: Manifest | None = None
             ) -> list[Finding]:
    """Judge the change from ``old`` to ``new``: every finding, deny first.

    Args:
        policy: the loaded rules.
        old: the installed tree (``EMPTY`` for a first install).
        new: the candidate tree.
        manifest: the candidate's manifest (prompt marks, lifecycle keys); optional.
    """
    prompts = manifest.prompt_paths if manifest else frozenset(
        p for p in new if is_prompt_name(p))
    ev = _Evaluator(policy, old, new, prompts)
    for path in new:
        nf = new.get(path)
        of = old.get(path)
        if nf is None or (of is not None and of.data == nf.data and of.mode == nf.mode):
            continue
        ev.run_file(path, of, nf)
    if manifest is not None:
        ev.run_manifest(manifest.raw)
    return sorted(ev.findings, key=_order)


def screen_text(policy: Policy, text: str, name: str = "-") -> list[Finding]:
    """Run the content rules (line, combo) on ``text`` as if it were a new prompt file."""
    content = Policy(tuple(r for r in policy.rules if r.kind in CONTENT_KINDS), policy.sets,
                     policy.trusted_domains, policy.decode_min_chars, policy.decode_depth,
                     policy.max_findings_per_rule, policy.sha256)
    new = Tree({name: TreeFile(text.encode("utf-8", "replace"), 0o644)})
    ev = _Evaluator(content, EMPTY, new, frozenset({name}))
    ev.run_file(name, None, new.files[name])
    return sorted(ev.findings, key=_order)


def example_trees(ex: Example) -> tuple[Tree, Tree, Mapping[str, Any]]:
    """The (old, new, manifest-raw) a policy example describes (for the policy tests)."""
    old = EMPTY if ex.old is None else Tree(
        {ex.path: TreeFile(ex.old.encode(), ex.old_mode if ex.old_mode is not None else ex.mode)})
    data = ex.data if ex.data is not None else ex.text.encode()
    new = Tree({ex.path: TreeFile(data, ex.mode)})
    return old, new, dict(ex.manifest or {})


def deny_rules(findings: Iterable[Finding]) -> list[str]:
    """The distinct ids of rules with deny findings, sorted."""
    return sorted({f.rule for f in findings if f.severity == "deny"})
