""":class:`UpdateGate`: the one class that touches the skill folder.

Layout of the skill folder (``settings.skill_dir``, 0700)::

    current -> versions/<slot>        the installed skill (a symlink switched by one rename)
    versions/<slot>/...               every applied version, kept (slot = <version>-<tree12>)
    meta/<slot>.json                  version, publishedAt, tree hash, previous slot, digest
    meta/<slot>.manifest.json         the manifest bytes that version was applied from
    candidate -> quarantine/<id>      the fetched candidate under review
    quarantine/<id>/manifest.json     its manifest bytes, exactly as fetched
    quarantine/<id>/files/...         its files, 0600, never executable
    quarantine/<id>/fetch.json        origin, time, whether a downgrade was allowed
    approvals/<digest>.json           who approved which digest, with which overrides
    audit.jsonl                       the hash-chained log of every action and refusal
    .lock                             one gate action at a time

Flow: ``fetch`` verifies a candidate (caps, paths, hashes, pinned signature, version order)
and quarantines it; ``review`` computes the diff, the findings and the digest from what is
on disk; ``approve`` binds an approval to that digest (deny findings need one explicit,
logged override each); ``apply`` recomputes everything, refuses on any difference, writes a
new version folder and switches ``current`` with one atomic rename; ``rollback`` switches
back. Nothing here executes a file of the skill.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import httpx

from impromptu_ops import __version__
from impromptu_ops.atomic import create_exclusive, fsync_dir, private_dir, write_bytes, write_json
from impromptu_ops.audit import AuditLog, ChainReport
from impromptu_ops.errors import (
    ConfigError,
    InputError,
    IntegrityError,
    OpsError,
    PolicyDenied,
)
from impromptu_ops.gate import GATE_VERSION
from impromptu_ops.gate.diff import Summary, render_diff, summarize
from impromptu_ops.gate.digest import review_digest
from impromptu_ops.gate.manifest import Manifest, is_newer, parse_manifest
from impromptu_ops.gate.policy import Finding, Policy, deny_rules, load_policy
from impromptu_ops.gate.scan import evaluate, screen_text
from impromptu_ops.gate.sources import Fetched, HttpSource, Source, source_for
from impromptu_ops.gate.tree import EMPTY, Caps, Tree, read_listed, read_tree_dir, verify_blobs
from impromptu_ops.settings import Settings
from impromptu_ops.skillsign import load_public_key, verify

FULL_GATE_VERSION = f"{GATE_VERSION} impromptu-ops/{__version__}"
_SLOT_RE = re.compile(r"^[0-9A-Za-z.+-]{1,120}$")
_ID_RE = re.compile(r"^[0-9a-f]{16}$")
_DIGEST_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Review:
    """Everything a person needs to decide, and the digest that names it."""

    digest: str
    summary: Summary
    findings: tuple[Finding, ...]
    diff: str
    origin: str
    signature: str  # "verified" | "not checked (no publisher key pinned)"
    allow_downgrade: bool
    candidate_id: str

    @property
    def deny_rules(self) -> list[str]:
        return deny_rules(self.findings)

    def as_json(self) -> dict[str, Any]:
        """``{digest, summary, findings}`` for ``update diff --json``."""
        return {
            "digest": self.digest,
            "summary": {**self.summary.as_dict(), "origin": self.origin,
                        "signature": self.signature, "allowDowngrade": self.allow_downgrade,
                        "denyRules": self.deny_rules},
            "findings": [f.as_dict() for f in self.findings],
        }


@dataclass(frozen=True)
class Installed:
    slot: str
    version: str
    manifest: Manifest | None
    tree: Tree


@dataclass(frozen=True)
class Status:
    installed: str | None
    installed_version: str | None
    candidate_version: str | None
    versions: tuple[str, ...]


@dataclass(frozen=True)
class _Candidate:
    cid: str
    manifest_bytes: bytes
    manifest: Manifest
    tree: Tree
    meta: dict[str, Any] = field(default_factory=dict)


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


class UpdateGate:
    """Fetch, review, approve, apply and roll back skill updates under one policy.

    Args:
        settings: the effective settings (``settings.skill_dir``, ``settings.gate``...).
        transport: an httpx transport for HTTP sources (tests); default: the network.
        clock: the current time (injected for tests).
    """

    def __init__(self, settings: Settings, *, transport: httpx.BaseTransport | None = None,
                 clock: Callable[[], datetime] = _now) -> None:
        self.settings = settings
        self.root = settings.skill_dir
        self.caps = Caps(settings.gate.max_file_bytes, settings.gate.max_total_bytes,
                         settings.gate.max_files)
        self._transport = transport
        self._clock = clock
        self.audit = AuditLog(self.root / "audit.jsonl", clock=clock)

    # --- paths and small readers -----------------------------------------------------------

    @property
    def policy_path(self) -> Path:
        return self.settings.gate.policy_file or (
            self.settings.paths.policies_dir / "update-gate.toml")

    def policy(self) -> tuple[Policy, list[tuple[str, bytes]]]:
        """The policy and the raw policy files (for the digest). Missing policy: fail closed.

        Raises:
            ConfigError: the policy file is missing or invalid.
        """
        path = self.policy_path
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"update policy {path} cannot be read ({exc.strerror}); the gate fails closed",
                hint="set gate.policy_file or restore policies/update-gate.toml",
            ) from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"update policy {path} is not UTF-8") from None
        return load_policy(text, path.name), [(path.name, data)]

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        from impromptu_ops.locks import ProcessLock

        private_dir(self.root)
        with ProcessLock(self.root / ".lock", "update gate"):
            yield

    def _meta(self, slot: str) -> dict[str, Any]:
        path = self.root / "meta" / f"{slot}.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise IntegrityError(f"installed version record {path} is unreadable ({exc})") \
                from None
        if not isinstance(data, dict):
            raise IntegrityError(f"installed version record {path} is not an object")
        return data

    def current_slot(self) -> str | None:
        link = self.root / "current"
        if not link.is_symlink():
            if link.exists():
                raise IntegrityError(f"{link} is not a symlink; refusing to touch it")
            return None
        target = os.readlink(link)
        parts = target.split("/")
        if len(parts) != 2 or parts[0] != "versions" or not _SLOT_RE.match(parts[1]):
            raise IntegrityError(f"{link} points outside versions/: {target!r}")
        return parts[1]

    def installed(self) -> Installed | None:
        """The installed version (tree read strictly from disk), or ``None`` before any."""
        slot = self.current_slot()
        if slot is None:
            return None
        tree = read_tree_dir(self.root / "versions" / slot, self.caps)
        manifest: Manifest | None = None
        mpath = self.root / "meta" / f"{slot}.manifest.json"
        if mpath.exists():
            manifest = parse_manifest(mpath.read_bytes(), max_files=self.caps.max_files)
        version = str(self._meta(slot).get("version", "?"))
        return Installed(slot, version, manifest, tree)

    def _verify_signature(self, manifest: Manifest) -> str:
        key = self.settings.gate.publisher_key
        if not key:
            return "not checked (no publisher key pinned)"
        verify(manifest.raw, load_public_key(key))
        return "verified"

    def _check_order(self, candidate: Manifest, installed: Installed | None,
                     allow_downgrade: bool) -> None:
        ok, why = is_newer(candidate, installed.manifest if installed else None)
        if not ok and not allow_downgrade:
            raise PolicyDenied(
                f"rollback refused: {why}",
                hint="a replayed older release is an attack; if you really mean to go back, "
                     "use `update rollback`, or fetch again with --allow-downgrade (logged)",
            )

    # --- fetch -------------------------------------------------------------------------------

    def source(self, spec: str | None) -> Source:
        p = self.settings.platform
        src = source_for(spec, default_url=self.settings.manifest_url,
                         connect_timeout=p.connect_timeout, read_timeout=p.read_timeout,
                         user_agent=p.user_agent)
        if isinstance(src, HttpSource) and self._transport is not None:
            src = HttpSource(src.manifest_url, connect_timeout=p.connect_timeout,
                             read_timeout=p.read_timeout, user_agent=p.user_agent,
                             transport=self._transport)
        return src

    def fetch(self, spec: str | None = None, *, allow_downgrade: bool = False) -> Review:
        """Download and verify a candidate into quarantine, then review it.

        Args:
            spec: a URL, a folder or a tarball; default: the platform's manifest URL.
            allow_downgrade: accept a candidate that is not newer than the installed one
                (logged loudly; bound into the digest).

        Raises:
            IntegrityError: caps, paths, links, hashes, sizes or the pinned signature.
            PolicyDenied: the candidate is not newer than the installed version.
            TransportError: the network failed.
        """
        with self._locked():
            src = self.source(spec)
            try:
                fetched = src.fetch(self.caps, self.settings.gate.max_manifest_bytes)
                tree = verify_blobs(fetched.manifest, fetched.blobs, self.caps)
                self._verify_signature(fetched.manifest)
                self._check_order(fetched.manifest, self.installed(), allow_downgrade)
            except OpsError as exc:
                self.audit.append("fetch-refused", origin=src.origin,
                                  error=type(exc).__name__, reason=exc.message)
                raise
            if allow_downgrade:
                self.audit.append("downgrade-allowed", origin=src.origin,
                                  version=fetched.manifest.version, by=_user())
            cid = self._quarantine(fetched, tree, allow_downgrade)
            self.audit.append("fetch", origin=src.origin, candidate=cid,
                              version=fetched.manifest.version, files=len(tree),
                              treeHash=tree.hash())
        return self.review()

    def _quarantine(self, fetched: Fetched, tree: Tree, allow_downgrade: bool) -> str:
        qroot = private_dir(self.root / "quarantine")
        cid = secrets.token_hex(8)
        tmp = qroot / f".{cid}.tmp"
        private_dir(tmp)
        for path in tree:
            f = tree.get(path)
            assert f is not None
            target = tmp / "files" / path
            for parent in reversed(target.relative_to(tmp).parents):
                if str(parent) != ".":
                    (tmp / parent).mkdir(mode=0o700, exist_ok=True)
            create_exclusive(target, f.data, 0o600)
        create_exclusive(tmp / "manifest.json", fetched.manifest_bytes, 0o600)
        write_json(tmp / "fetch.json", {"origin": fetched.origin, "fetchedAt": _iso(self._clock()),
                                        "allowDowngrade": allow_downgrade,
                                        "version": fetched.manifest.version})
        os.rename(tmp, qroot / cid)
        self._switch_link("candidate", f"quarantine/{cid}")
        for old in qroot.iterdir():  # an earlier candidate is superseded, never merged
            if old.name != cid:
                shutil.rmtree(old, ignore_errors=True)
        return cid

    def _switch_link(self, name: str, target: str) -> None:
        tmp = self.root / f".{name}.{secrets.token_hex(4)}"
        os.symlink(target, tmp)
        os.replace(tmp, self.root / name)
        fsync_dir(self.root)

    def _candidate(self) -> _Candidate:
        link = self.root / "candidate"
        if not link.is_symlink():
            raise InputError("no candidate under review", hint="run `impromptu-ops update fetch`")
        target = os.readlink(link)
        parts = target.split("/")
        if len(parts) != 2 or parts[0] != "quarantine" or not _ID_RE.match(parts[1]):
            raise IntegrityError(f"{link} points outside quarantine/: {target!r}")
        qdir = self.root / "quarantine" / parts[1]
        raw = (qdir / "manifest.json").read_bytes()
        manifest = parse_manifest(raw, max_files=self.caps.max_files)
        blobs = read_listed(qdir / "files", manifest, self.caps)
        tree = verify_blobs(manifest, blobs, self.caps)
        try:
            meta = json.loads((qdir / "fetch.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise IntegrityError(f"candidate record {qdir / 'fetch.json'} unreadable") from None
        return _Candidate(parts[1], raw, manifest, tree, meta if isinstance(meta, dict) else {})

    # --- review, approve ---------------------------------------------------------------------

    def review(self) -> Review:
        """Diff, findings and digest of the quarantined candidate, computed from disk now.

        Raises:
            InputError: no candidate; IntegrityError: the quarantine no longer verifies;
            PolicyDenied: the candidate is no longer newer than the installed version.
        """
        return self._review()[0]

    def _review(self) -> tuple[Review, _Candidate, Installed | None]:
        cand = self._candidate()
        signature = self._verify_signature(cand.manifest)
        inst = self.installed()
        allow = bool(cand.meta.get("allowDowngrade", False))
        self._check_order(cand.manifest, inst, allow)
        old = inst.tree if inst else EMPTY
        policy, policy_files = self.policy()
        diff_text = render_diff(old, cand.tree)
        findings = tuple(evaluate(policy, old, cand.tree, cand.manifest))
        digest = review_digest(
            installed=old, candidate=cand.tree, manifest_bytes=cand.manifest_bytes,
            diff_text=diff_text, policy_files=policy_files, gate_version=FULL_GATE_VERSION,
            allow_downgrade=allow,
        )
        summary = summarize(old, cand.tree, inst.version if inst else None,
                            cand.manifest.version)
        rev = Review(digest, summary, findings, diff_text, str(cand.meta.get("origin", "?")),
                     signature, allow, cand.cid)
        return rev, cand, inst

    def approve(self, *, digest: str | None, overrides: Sequence[str] = (),
                confirm: Callable[[Review], bool] | None = None) -> dict[str, Any]:
        """Record an approval bound to the current review's digest.

        Args:
            digest: the digest the person reviewed (``--digest``); must match exactly.
            overrides: rule ids whose deny findings the person explicitly overrides.
            confirm: asks the person (TTY) and returns their answer; ``None`` means
                non-interactive, which then requires ``digest``.

        Raises:
            InputError: neither a confirmation nor a digest; an override names no deny rule.
            PolicyDenied: digest mismatch, deny findings not overridden, or declined.
        """
        with self._locked():
            rev = self.review()
            try:
                if confirm is None and digest is None:
                    raise InputError(
                        "approval needs a person: run on a TTY, or pass --yes with "
                        "--digest D (the digest you reviewed)")
                if digest is not None and digest != rev.digest:
                    raise PolicyDenied(
                        f"digest mismatch: you reviewed {digest[:16]}…, the candidate now is "
                        f"{rev.digest[:16]}…",
                        hint="the candidate, installed tree or policy changed; review again "
                             "with `update diff`")
                denied = rev.deny_rules
                unknown = sorted(set(overrides) - set(denied))
                if unknown:
                    raise InputError(
                        f"--override {', '.join(unknown)}: no deny finding of that rule in "
                        "this review (overrides are per rule and per review)")
                missing = sorted(set(denied) - set(overrides))
                if missing:
                    raise PolicyDenied(
                        f"deny findings block approval: {', '.join(missing)}",
                        hint="read them in `update diff`; to approve anyway, pass "
                             "--override RULE for each (every override is logged)")
                if confirm is not None and not confirm(rev):
                    raise PolicyDenied("approval declined")
            except OpsError as exc:
                self.audit.append("approve-refused", candidate=rev.candidate_id,
                                  digest=rev.digest, reason=exc.message)
                raise
            for rule in sorted(set(overrides)):
                self.audit.append("override", rule=rule, digest=rev.digest, by=_user(),
                                  findings=[f.where() for f in rev.findings if f.rule == rule])
            record = {
                "digest": rev.digest, "candidate": rev.candidate_id,
                "fromVersion": rev.summary.from_version, "toVersion": rev.summary.to_version,
                "approvedAt": _iso(self._clock()), "approvedBy": _user(),
                "how": "tty" if confirm is not None else "--yes --digest",
                "overrides": sorted(set(overrides)), "denyRules": rev.deny_rules,
                "warnings": sum(1 for f in rev.findings if f.severity == "warn"),
                "gate": FULL_GATE_VERSION,
            }
            write_json(private_dir(self.root / "approvals") / f"{rev.digest}.json", record)
            self.audit.append("approve", **{k: v for k, v in record.items()
                                            if k not in ("approvedAt",)})
            return record

    # --- apply, rollback ---------------------------------------------------------------------

    def _approval(self, digest: str) -> dict[str, Any] | None:
        path = self.root / "approvals" / f"{digest}.json"
        if not path.exists():
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) and data.get("digest") == digest else None

    def _approved_for(self, cid: str) -> list[str]:
        folder = self.root / "approvals"
        out = []
        if folder.is_dir():
            for p in sorted(folder.glob("*.json")):
                with contextlib.suppress(OSError, ValueError):
                    d = json.loads(p.read_text(encoding="utf-8"))
                    if isinstance(d, dict) and d.get("candidate") == cid:
                        out.append(str(d.get("digest")))
        return out

    def apply(self) -> dict[str, Any]:
        """Recompute the review, require an approval of exactly that digest, switch atomically.

        Raises:
            PolicyDenied: no approval for the recomputed digest (something changed after
                review), or its overrides no longer cover the deny findings.
            IntegrityError: the quarantine no longer verifies against its manifest.
        """
        with self._locked():
            try:
                # The tree written below is exactly the one this digest was computed over.
                rev, cand, inst = self._review()
                approval = self._approval(rev.digest)
                if approval is None or approval.get("applied"):
                    earlier = [d for d in self._approved_for(rev.candidate_id) if d != rev.digest]
                    if earlier:
                        raise PolicyDenied(
                            f"digest mismatch: approved {earlier[0][:16]}…, but the candidate "
                            f"now is {rev.digest[:16]}…; the candidate, installed tree or "
                            "policy changed after approval",
                            hint="nothing was applied; review again with `update diff`")
                    raise PolicyDenied(
                        f"no approval for digest {rev.digest[:16]}…",
                        hint="review with `update diff`, then `update approve`")
                missing = sorted(set(rev.deny_rules) - set(approval.get("overrides", [])))
                if missing:  # cannot happen with an unchanged digest; checked anyway
                    raise PolicyDenied(f"deny findings not overridden: {', '.join(missing)}")
            except OpsError as exc:
                self.audit.append("apply-refused", reason=exc.message,
                                  error=type(exc).__name__)
                raise
            slot = f"{cand.manifest.version}-{cand.tree.hash()[:12]}"
            self._write_version(slot, cand.tree)
            write_bytes(private_dir(self.root / "meta") / f"{slot}.manifest.json",
                        cand.manifest_bytes)
            record = {"slot": slot, "version": cand.manifest.version,
                      "publishedAt": _iso(cand.manifest.published_at),
                      "treeHash": cand.tree.hash(), "digest": rev.digest,
                      "previous": inst.slot if inst else None,
                      "appliedAt": _iso(self._clock())}
            write_json(self.root / "meta" / f"{slot}.json", record)
            self._switch_link("current", f"versions/{slot}")
            write_json(self.root / "approvals" / f"{rev.digest}.json",
                       {**approval, "applied": record["appliedAt"]})
            (self.root / "candidate").unlink()
            shutil.rmtree(self.root / "quarantine" / cand.cid, ignore_errors=True)
            self.audit.append("apply", slot=slot, version=cand.manifest.version,
                              previous=record["previous"], digest=rev.digest,
                              treeHash=record["treeHash"])
            return record

    def _write_version(self, slot: str, tree: Tree) -> None:
        versions = self.root / "versions"
        versions.mkdir(mode=0o755, exist_ok=True)
        final = versions / slot
        if final.exists():
            if read_tree_dir(final, self.caps).hash() == tree.hash():
                return  # the very same tree was applied before: reuse it
            raise IntegrityError(f"{final} exists with other content; refusing to overwrite")
        tmp = versions / f".{slot}.{secrets.token_hex(4)}.tmp"
        tmp.mkdir(mode=0o755)
        for path in tree:
            f = tree.get(path)
            assert f is not None
            target = tmp / path
            target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            try:
                os.write(fd, f.data)
                os.fchmod(fd, f.mode)
                os.fsync(fd)
            finally:
                os.close(fd)
        if read_tree_dir(tmp, self.caps).hash() != tree.hash():  # pragma: no cover - disk
            raise IntegrityError(f"{tmp}: the written tree does not read back identically")
        os.rename(tmp, final)
        fsync_dir(versions)

    def rollback(self, to: str | None = None) -> dict[str, Any]:
        """Switch ``current`` back to the previous version (or to slot ``to``).

        Raises:
            InputError: nothing to roll back to, or no such version.
        """
        with self._locked():
            slot = self.current_slot()
            if slot is None:
                raise InputError("no version installed; nothing to roll back")
            target = to if to is not None else self._meta(slot).get("previous")
            if not target:
                raise InputError(f"{slot} has no previous version to roll back to")
            if (not isinstance(target, str) or not _SLOT_RE.match(target)
                    or not (self.root / "versions" / target).is_dir()):
                raise InputError(f"no installed version {str(target)[:60]!r}",
                                 hint="see `update status` for the kept versions")
            read_tree_dir(self.root / "versions" / target, self.caps)  # refuses tampering
            self._switch_link("current", f"versions/{target}")
            version = str(self._meta(target).get("version", "?"))
            self.audit.append("rollback", slot=target, version=version, fromSlot=slot,
                              by=_user())
            return {"slot": target, "version": version, "from": slot}

    # --- status, log, screen -----------------------------------------------------------------

    def status(self) -> Status:
        slot = self.current_slot()
        version = str(self._meta(slot).get("version")) if slot else None
        cand: str | None = None
        with contextlib.suppress(OpsError, OSError):
            cand = self._candidate().manifest.version
        vdir = self.root / "versions"
        kept = tuple(sorted(p.name for p in vdir.iterdir() if not p.name.startswith("."))) \
            if vdir.is_dir() else ()
        return Status(slot, version, cand, kept)

    def log(self) -> tuple[list[dict[str, Any]], ChainReport]:
        """Every audit entry and the verification of the hash chain."""
        return list(self.audit.entries()), self.audit.verify()

    def screen(self, stream: BinaryIO, name: str) -> list[Finding]:
        """Run the prompt-content rules on text (a file or stdin), capped in size.

        Raises:
            InputError: the text is too large or not UTF-8.
        """
        cap = self.settings.gate.max_file_bytes
        data = stream.read(cap + 1)
        if len(data) > cap:
            raise InputError(f"{name}: more than {cap} bytes; refusing to screen")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(f"{name}: not UTF-8 text") from None
        policy, _ = self.policy()
        return screen_text(policy, text, name)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # pragma: no cover - no passwd entry in some containers
        return f"uid {os.getuid()}"
