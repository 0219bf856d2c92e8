"""Private: The update policy: rules as data (TOML), parsed and checked into values (pure).

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
``new-url``         a URL on an added line, on a known host, that the installed tree lacks
``manifest-key``    a key in the manifest (top level or nested) such as a lifecycle hook
``version-jump``    the candidate's version is further ahead of the installed one than
                    ``max_jump = [major, minor, patch]`` (the first differing part counts;
                    a first install is measured from 0.0.0 against ``max_first``)
``long-line``       an added line longer than ``[gate] max_line_chars`` (rules read only that
                    much of it, so the scan stays fast; the rest cannot be reviewed)
``capability``      what code does, read as code (:mod:`.capabilities`): a shell or Python
                    file's commands classified by capability; ``capabilities`` names the
                    classes of finding the rule reports
==================  =========================================================================

Rules are evaluated on the change itself: lines that exist unchanged in the installed
version are context, never findings. ``applies_to = "prompt"`` restricts a rule to files
that become system prompts (SKILL.md, HEARTBEAT.md, anything the manifest marks
``prompt``). Evaluation lives in :mod:`.scan`.

A combo set whose name starts with ``@`` is a built-in matcher: ``@untrusted-host`` matches
a line naming a network host outside ``[gate] trusted_domains`` (a URL, a raw IP address,
``/dev/tcp/...``).

Every quantifier in a policy regex must be bounded (``{0,200}``, not ``*``; whitespace
excepted): checked at load, so that no rule can make a scan of a hostile file quadratic.

This module owns the rule vocabulary and the loading; :mod:`.scan` evaluates rules over a
change; overrides, approvals and the audit log are the business of :mod:`.gate`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from impromptu_ops.errors import ConfigError
from impromptu_ops.gate.tree import EMPTY, Tree, TreeFile

# The stdlib parser behind ``re`` (no public API, no stubs): used only to check that every
# quantifier of a policy regex is bounded.
_sre: Any = importlib.import_module("re._parser")

SEVERITIES: Final = ("deny", "warn")
KINDS: Final = (
    "line", "combo", "path", "new-file", "new-executable", "binary", "new-domain", "new-url",
    "manifest-key", "version-jump", "capability", "long-line",
)
CONTENT_KINDS: Final = frozenset({"line", "combo"})
MANIFEST_FILE: Final = "impromptu.skill.json"

_RULE_KEYS: Final = frozenset({
    "id", "severity", "kind", "summary", "applies_to", "patterns", "unless", "globs",
    "all_of", "window", "keys", "text_only", "example", "max_jump", "max_first",
    "capabilities",
})
_EXAMPLE_KEYS: Final = frozenset({
    "match", "path", "text", "hex", "old", "mode", "old_mode", "manifest", "version",
    "old_version", "repeat",
})
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
    version: str = "1.1.0"
    old_version: str | None = None


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
    max_jump: tuple[int, int, int] = (0, 0, 0)
    max_first: tuple[int, int, int] = (0, 0, 0)
    capabilities: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Policy:
    rules: tuple[Rule, ...]
    sets: Mapping[str, tuple[re.Pattern[str], ...]] = field(default_factory=dict)
    trusted_domains: tuple[str, ...] = ()
    decode_min_chars: int = 24
    decode_depth: int = 2
    max_findings_per_rule: int = 20
    sha256: str = ""
    egress_allow: tuple[str, ...] = ()
    key_hosts: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    persistence_allow: tuple[str, ...] = ()
    max_code_bytes: int = 256 * 1024
    code_read_seconds: int = 60
    max_line_chars: int = 16384

    def only(self, rule_id: str) -> Policy:
        """The same policy with just one rule (for the policy's own tests)."""
        return dataclasses.replace(self, rules=tuple(r for r in self.rules if r.id == rule_id))

    def rule(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)


# --- loading ----------------------------------------------------------------------------------


def _unbounded(items: Any) -> bool:
    """True if a parsed regex repeats anything but whitespace without an upper bound."""
    for op, av in items:
        name = str(op)
        if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            _lo, hi, sub = av
            only_space = len(sub) == 1 and str(sub[0][0]) == "IN" and all(
                str(a) == "CATEGORY" and str(b) == "CATEGORY_SPACE" for a, b in sub[0][1])
            if hi == _sre.MAXREPEAT and not only_space:
                return True
            if _unbounded(sub):
                return True
        elif name == "SUBPATTERN":
            if _unbounded(av[-1]):
                return True
        elif name == "BRANCH":
            if any(_unbounded(b) for b in av[1]):
                return True
        elif name in ("ASSERT", "ASSERT_NOT") and _unbounded(av[1]):
            return True
    return False


def _regexes(where: str, raw: object) -> tuple[re.Pattern[str], ...]:
    if not isinstance(raw, list) or not all(isinstance(p, str) for p in raw):
        raise ConfigError(f"{where}: expected a list of regex strings")
    out = []
    for p in raw:
        try:
            # MULTILINE: rules search a whole file at once; ^ and $ still mean the line.
            out.append(re.compile(p, re.MULTILINE))
            parsed = _sre.parse(p)
        except re.error as exc:
            raise ConfigError(f"{where}: bad regex {p[:60]!r}: {exc}") from None
        if _unbounded(parsed.data):
            raise ConfigError(
                f"{where}: regex {p[:60]!r} has an unbounded repeat (*, +, {{n,}}); bound it "
                "(e.g. {0,200}) so that a hostile file cannot make the scan quadratic")
    return tuple(out)


def _triple(where: str, raw: object) -> tuple[int, int, int]:
    if (not isinstance(raw, list) or len(raw) != 3
            or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in raw)):
        raise ConfigError(f"{where}: expected [major, minor, patch], each a whole number >= 0")
    return (raw[0], raw[1], raw[2])


def _capabilities(where: str, raw: object) -> frozenset[str]:
    from impromptu_ops.gate.capabilities import CLASSES  # the vocabulary lives with the code

    if not isinstance(raw, list) or not all(isinstance(c, str) for c in raw):
        raise ConfigError(f"{where}: expected a list of capability classes")
    unknown = sorted(set(raw) - set(CLASSES))
    if unknown:
        raise ConfigError(f"{where}: unknown capability classes {unknown}; known: "
                          f"{sorted(CLASSES)}")
    return frozenset(raw)


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
        text=str(raw.get("text", "")) * int(raw.get("repeat", 1)),
        data=bytes.fromhex(str(raw["hex"])) if "hex" in raw else None,
        old=None if raw.get("old") is None else str(raw["old"]),
        mode=_mode(where, raw.get("mode", "0644")),
        old_mode=None if raw.get("old_mode") is None else _mode(where, raw["old_mode"]),
        manifest=manifest if isinstance(manifest, dict) else None,
        version=str(raw.get("version", "1.1.0")),
        old_version=None if raw.get("old_version") is None else str(raw["old_version"]),
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
        max_jump=_triple(f"{where}.max_jump", raw.get("max_jump", [0, 0, 0])),
        max_first=_triple(f"{where}.max_first", raw.get("max_first", [0, 0, 0])),
        capabilities=_capabilities(f"{where}.capabilities", raw.get("capabilities", [])),
    )
    needs = {"line": rule.patterns, "combo": rule.all_of, "path": rule.globs,
             "manifest-key": rule.keys, "capability": rule.capabilities,
             "version-jump": any(rule.max_jump) and any(rule.max_first)}
    if kind in needs and not needs[str(kind)]:
        raise ConfigError(f"{where}: kind {kind} needs its patterns/all_of/globs/keys/"
                          "capabilities/max_jump and max_first")
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
        egress_allow=_strings(f"policy {name} [gate] egress_allow",
                              gate.get("egress_allow", gate.get("trusted_domains", [])),
                              lower=True),
        key_hosts={str(k): _strings(f"policy {name} [gate.key_hosts] {k}", v, lower=True)
                   for k, v in _table(f"policy {name} [gate.key_hosts]",
                                      gate.get("key_hosts", {})).items()},
        persistence_allow=_strings(f"policy {name} [gate] persistence_allow",
                                   gate.get("persistence_allow", [])),
        max_code_bytes=_positive(f"policy {name} [gate] max_code_bytes",
                                 gate.get("max_code_bytes", 256 * 1024)),
        code_read_seconds=_positive(f"policy {name} [gate] code_read_seconds",
                                    gate.get("code_read_seconds", 60)),
        max_line_chars=_positive(f"policy {name} [gate] max_line_chars",
                                 gate.get("max_line_chars", 16384)),
    )


def _strings(where: str, raw: object, lower: bool = False) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise ConfigError(f"{where}: expected a list of strings")
    return tuple(x.lower() if lower else x for x in raw)


def _table(where: str, raw: object) -> dict[str, object]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a table")
    return raw


def _positive(where: str, raw: object) -> int:
    if not isinstance(raw, int) or isinstance(raw, bool) or raw <= 0:
        raise ConfigError(f"{where}: expected a positive whole number")
    return raw


# --- evaluation -----------------------------------------------------------------------------


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
