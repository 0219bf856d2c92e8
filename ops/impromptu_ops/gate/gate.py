""":class:`UpdateGate`: fetch, review, approve, apply and roll back skill updates.

The one outer class of the gate: it wires the pure core (manifest, tree, policy, scan,
diff, digest) to the I/O (a :class:`~.sources.Source`, the :class:`~.folder.SkillFolder`,
the hash-chained :class:`~impromptu_ops.audit.AuditLog`) and makes every decision:

- ``fetch`` verifies a candidate (caps, paths, links, hashes, the pinned signature, version
  order) and quarantines it; any refusal is logged as ``fetch-refused``.
- ``review`` computes the diff, the findings and the digest from what is on disk now.
- ``approve`` binds an approval to that digest; deny findings need one explicit, logged
  ``--override RULE`` each; a person confirms on a TTY, or a script passes the exact digest.
- ``apply`` recomputes the review, refuses unless an approval of exactly that digest exists,
  writes a new version folder and switches ``current`` with one rename.
- ``rollback`` switches back to a kept version.

Nothing here executes a file of the skill, at any step: there is no code path that runs or
imports anything from an update. The one process the gate starts is a fork of itself that
reads a file as code (:func:`.coderead.code_events`, so that a parser crash cannot take the gate
down); it never execs.
"""

from __future__ import annotations

import contextlib
import getpass
import os
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import httpx

from impromptu_ops import __version__, files
from impromptu_ops.audit import AuditLog, ChainReport
from impromptu_ops.errors import ConfigError, InputError, IntegrityError, OpsError, PolicyDenied
from impromptu_ops.gate import GATE_VERSION
from impromptu_ops.gate.diff import render_diff, summarize
from impromptu_ops.gate.digest import review_digest, verdict_key
from impromptu_ops.gate.folder import Candidate, Installed, SkillFolder
from impromptu_ops.gate.manifest import Manifest, is_newer
from impromptu_ops.gate.policy import Finding, Policy, load_policy
from impromptu_ops.gate.review import Review, Status, check_approval
from impromptu_ops.gate.scan import evaluate, screen_text
from impromptu_ops.gate.sources import Source, source_for
from impromptu_ops.gate.tree import EMPTY, Caps, verify_blobs
from impromptu_ops.settings import Settings
from impromptu_ops.skillsign import load_public_key, verify

FULL_GATE_VERSION = f"{GATE_VERSION} impromptu-ops/{__version__}"


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # pragma: no cover - no passwd entry in some containers
        return f"uid {os.getuid()}"


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
        self.folder = SkillFolder(self.root, self.caps, settings.gate.max_manifest_bytes)
        self.audit = AuditLog(self.root / "audit.jsonl", clock=clock)
        self._transport = transport
        self._clock = clock

    @contextlib.contextmanager
    def _acting(self) -> Iterator[None]:
        """Hold the folder lock and refuse to act on a broken audit log (fail closed): an
        action whose record cannot be chained onto a verified log must not happen."""
        with self.folder.locked():
            report = self.audit.verify()
            if not report.ok:
                raise IntegrityError(
                    f"the update audit log {self.audit.path} is broken at line "
                    f"{report.first_bad_line} ({report.reason}); refusing to act",
                    hint="inspect it with `update log`; move it aside (keep it as evidence) "
                         "to start a new log")
            yield

    # --- policy, signature, order ------------------------------------------------------------

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
            data = files.read_regular(path, what="update policy", error=ConfigError,
                                      limit=files.MAX_POLICY_BYTES)
        except ConfigError as exc:
            raise ConfigError(f"{exc.message}; the gate fails closed",
                              hint="set gate.policy_file or restore policies/update-gate.toml",
                              ) from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"update policy {path} is not UTF-8") from None
        return load_policy(text, path.name), [(path.name, data)]

    def _verify_signature(self, manifest: Manifest) -> str:
        key = self.settings.gate.publisher_key
        if not key:
            return "not checked (no publisher key pinned)"
        verify(manifest.raw, load_public_key(key))
        return "verified"

    def _check_order(self, candidate: Manifest, installed: Installed | None,
                     allow_downgrade: bool) -> None:
        if installed and installed.manifest and installed.manifest.name != candidate.name:
            raise PolicyDenied(
                f"candidate is skill {candidate.name!r}, the installed one is "
                f"{installed.manifest.name!r}",
                hint="use another --skill-dir for another skill")
        ok, why = is_newer(candidate, installed.manifest if installed else None)
        if not ok and not allow_downgrade:
            raise PolicyDenied(
                f"rollback refused: {why}",
                hint="a replayed older release is an attack; if you really mean to go back, "
                     "use `update rollback`, or fetch again with --allow-downgrade (logged)",
            )

    def _check_published(self, manifest: Manifest) -> None:
        """Refuse a release dated in the future (a freeze attack: installed once, it makes
        every genuine release look older and so blocks it)."""
        skew = self.settings.gate.max_clock_skew
        if (manifest.published_at - self._clock()).total_seconds() > skew:
            raise IntegrityError(
                f"candidate publishedAt {_iso(manifest.published_at)} is in the future "
                f"(now {_iso(self._clock())}, allowed clock skew {skew:g} s): refusing a "
                "release that would block every genuine one as older",
                hint="check this machine's clock; a release dated ahead is a freeze attack")

    # --- fetch -------------------------------------------------------------------------------

    def source(self, spec: str | None) -> Source:
        """The source for ``update fetch [SOURCE]`` (default: the platform manifest URL)."""
        p = self.settings.platform
        return source_for(spec, default_url=self.settings.manifest_url,
                          connect_timeout=p.connect_timeout, read_timeout=p.read_timeout,
                          user_agent=p.user_agent, deadline=p.deadline,
                          transport=self._transport)

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
        with self._acting():
            src = self.source(spec)
            try:
                fetched = src.fetch(self.caps, self.settings.gate.max_manifest_bytes)
                tree = verify_blobs(fetched.manifest, fetched.blobs, self.caps)
                self._verify_signature(fetched.manifest)
                self._check_published(fetched.manifest)
                self._check_order(fetched.manifest, self.folder.installed(), allow_downgrade)
            except OpsError as exc:
                self.audit.append("fetch-refused", origin=src.origin,
                                  error=type(exc).__name__, reason=exc.message)
                raise
            if allow_downgrade:
                self.audit.append("downgrade-allowed", origin=src.origin,
                                  version=fetched.manifest.version, by=_user())
            cid = self.folder.quarantine(fetched.manifest_bytes, tree, {
                "origin": fetched.origin, "fetchedAt": _iso(self._clock()),
                "allowDowngrade": allow_downgrade, "version": fetched.manifest.version})
            self.audit.append("fetch", origin=src.origin, candidate=cid,
                              version=fetched.manifest.version, files=len(tree),
                              treeHash=tree.hash())
        return self.review()

    # --- review, approve ---------------------------------------------------------------------

    def review(self) -> Review:
        """Diff, findings and digest of the quarantined candidate, computed from disk now.

        Raises:
            InputError: no candidate; IntegrityError: the quarantine no longer verifies;
            PolicyDenied: the candidate is no longer newer than the installed version.
        """
        return self._review()[0]

    def _review(self) -> tuple[Review, Candidate, Installed | None]:
        cand = self.folder.candidate()
        signature = self._verify_signature(cand.manifest)
        inst = self.folder.installed()
        allow = bool(cand.meta.get("allowDowngrade", False))
        self._check_order(cand.manifest, inst, allow)
        old = inst.tree if inst else EMPTY
        policy, policy_files = self.policy()
        key = verdict_key(installed=old, candidate=cand.tree,
                          manifest_bytes=cand.manifest_bytes, policy_files=policy_files,
                          gate_version=FULL_GATE_VERSION, allow_downgrade=allow)
        stored = self._stored_verdict(cand.cid, key)
        if stored is not None:
            diff_text, findings = stored
        else:
            # The scan runs once per candidate (at fetch) and is stored bound to the exact
            # inputs; approve and apply rescan only if the installed tree, the policy or the
            # gate changed since (then the digest changes too).
            diff_text = render_diff(old, cand.tree)
            findings = tuple(evaluate(policy, old, cand.tree, cand.manifest,
                                      installed_manifest=inst.manifest if inst else None))
            self.folder.save_verdict(cand.cid, {
                "key": key, "diff": diff_text, "findings": [f.as_dict() for f in findings]})
        digest = review_digest(
            installed=old, candidate=cand.tree, manifest_bytes=cand.manifest_bytes,
            diff_text=diff_text, policy_files=policy_files, gate_version=FULL_GATE_VERSION,
            allow_downgrade=allow, findings=[f.as_dict() for f in findings],
        )
        summary = summarize(old, cand.tree, inst.version if inst else None,
                            cand.manifest.version)
        rev = Review(digest, summary, findings, diff_text, str(cand.meta.get("origin", "?")),
                     signature, allow, cand.cid)
        return rev, cand, inst

    def _stored_verdict(self, cid: str, key: str) -> tuple[str, tuple[Finding, ...]] | None:
        """The diff and findings stored with the candidate for exactly these inputs."""
        saved = self.folder.verdict(cid)
        if saved is None or saved.get("key") != key or not isinstance(saved.get("diff"), str):
            return None
        try:
            findings = tuple(Finding(**f) for f in saved.get("findings", []))
        except TypeError:
            return None
        return saved["diff"], findings

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
        with self._acting():
            rev = self.review()
            try:
                check_approval(rev, digest, overrides, confirm)
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
            self.folder.save_approval(record)
            self.audit.append("approve", **{k: v for k, v in record.items()
                                            if k != "approvedAt"})
            return record

    # --- apply, rollback ---------------------------------------------------------------------

    def apply(self) -> dict[str, Any]:
        """Recompute the review, require an approval of exactly that digest, switch atomically.

        Raises:
            PolicyDenied: no approval for the recomputed digest (something changed after
                review), or its overrides no longer cover the deny findings.
            IntegrityError: the quarantine no longer verifies against its manifest.
            InputError: there is no candidate.
        """
        with self._acting():
            finished = self._finish_interrupted_apply()
            if finished is not None:
                return finished
            try:
                # The tree written below is exactly the one this digest was computed over.
                rev, cand, inst = self._review()
                approval = self.folder.approval(rev.digest)
                if approval is None or approval.get("applied"):
                    earlier = [d for d in self.folder.approvals_for(rev.candidate_id)
                               if d != rev.digest]
                    if earlier:
                        raise PolicyDenied(
                            f"digest mismatch: approved {earlier[0][:16]}…, but the candidate "
                            f"now is {rev.digest[:16]}…; the candidate, installed tree or "
                            "policy changed after approval",
                            hint="nothing was applied; review again with `update diff`")
                    raise PolicyDenied(f"no approval for digest {rev.digest[:16]}…",
                                       hint="review with `update diff`, then `update approve`")
                missing = sorted(set(rev.deny_rules) - set(approval.get("overrides", [])))
                if missing:  # cannot happen with an unchanged digest; checked anyway
                    raise PolicyDenied(f"deny findings not overridden: {', '.join(missing)}")
            except OpsError as exc:
                self.audit.append("apply-refused", reason=exc.message, error=type(exc).__name__)
                raise
            applied_at = _iso(self._clock())
            record = {"version": cand.manifest.version,
                      "publishedAt": _iso(cand.manifest.published_at),
                      "treeHash": cand.tree.hash(), "digest": rev.digest,
                      "previous": inst.slot if inst else None, "appliedAt": applied_at}
            slot = self.folder.write_version(cand, record)
            self.folder.switch("current", f"versions/{slot}")
            self.folder.save_approval({**approval, "applied": applied_at})
            self.folder.drop_candidate(cand.cid)
            self.audit.append("apply", slot=slot, version=cand.manifest.version,
                              previous=record["previous"], digest=rev.digest,
                              treeHash=record["treeHash"])
            return {**record, "slot": slot}

    def _finish_interrupted_apply(self) -> dict[str, Any] | None:
        """Complete an apply that switched ``current`` but died before cleaning up.

        Only when the installed version is byte for byte the candidate and was applied under
        a recorded approval; otherwise ``None`` and the normal checks run.
        """
        try:
            cand = self.folder.candidate()
            inst = self.folder.installed()
        except (OpsError, OSError):
            return None
        digest = str(inst.meta.get("digest", "")) if inst else ""
        if inst is None or inst.tree.hash() != cand.tree.hash() or not digest:
            return None
        approval = self.folder.approval(digest)
        if approval is None or approval.get("candidate") != cand.cid:
            return None
        self.folder.save_approval({**approval, "applied": inst.meta.get("appliedAt")})
        self.folder.drop_candidate(cand.cid)
        self.audit.append("apply-completed", slot=inst.slot, version=inst.version,
                          digest=digest)
        return {**inst.meta, "slot": inst.slot}

    def rollback(self, to: str | None = None) -> dict[str, Any]:
        """Switch ``current`` back to the previous version (or to the kept slot ``to``).

        Raises:
            InputError: nothing to roll back to, or no such version.
            IntegrityError: the target version folder was tampered with (links, specials).
        """
        with self._acting():
            slot = self.folder.current_slot()
            if slot is None:
                raise InputError("no version installed; nothing to roll back")
            target = to if to is not None else self.folder.meta(slot).get("previous")
            if not target:
                raise InputError(f"{slot} has no previous version to roll back to")
            if not isinstance(target, str) or not self.folder.has_version(target):
                raise InputError(f"no kept version {str(target)[:60]!r}",
                                 hint="see `update status` for the kept versions")
            try:
                tree = self.folder.version_tree(target)  # refuses links and special files
                meta = self.folder.meta(target)
                # A kept version is switched to without a new review, so it must still be
                # exactly the tree that was reviewed and applied.
                if tree.hash() != meta.get("treeHash"):
                    raise IntegrityError(
                        f"kept version {target} no longer matches the tree that was applied "
                        "(a file was changed, added or removed since)",
                        hint="fetch and review that release again instead of rolling back")
            except OpsError as exc:
                self.audit.append("rollback-refused", slot=target, reason=exc.message)
                raise
            self.folder.switch("current", f"versions/{target}")
            version = str(meta.get("version", "?"))
            self.audit.append("rollback", slot=target, version=version, fromSlot=slot,
                              by=_user())
            return {"slot": target, "version": version, "from": slot}

    # --- status, log, screen -----------------------------------------------------------------

    def status(self) -> Status:
        slot = self.folder.current_slot()
        version = str(self.folder.meta(slot).get("version")) if slot else None
        cand: str | None = None
        try:
            cand = self.folder.candidate().manifest.version
        except (OpsError, OSError):
            cand = None
        return Status(slot, version, cand, self.folder.kept())

    def log(self) -> tuple[list[dict[str, Any]], ChainReport]:
        """Every audit entry and the verification of the hash chain.

        Lines that are not JSON objects are shown as ``unreadable`` entries (the chain
        report names the first bad one) instead of stopping the listing.
        """
        entries: list[dict[str, Any]] = [
            entry if isinstance(entry, dict) else
            {"seq": None, "event": "unreadable", "line": lineno}
            for lineno, entry in self.audit.lines()]
        report = self.audit.verify()
        if report.ok and entries:
            missing = self._unlogged(entries)
            if missing:
                report = ChainReport(
                    False, report.entries, None,
                    f"no log entry for the {missing[0][0]} of digest {missing[0][1][:16]}… "
                    f"recorded at {missing[0][2]}: lines were dropped from the end of the log "
                    "(or the gate died right before logging it)")
        return entries, report

    @staticmethod
    def _when(text: object) -> datetime | None:
        try:
            when = datetime.fromisoformat(str(text))
        except ValueError:
            return None
        return when if when.tzinfo is not None else None  # ours are always UTC-aware

    def _unlogged(self, entries: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
        """Applies and approvals on disk, made since the log began, that it does not hold.

        A hash chain cannot show that its last lines were cut off; the records the gate
        keeps beside the log can. Records older than the log's first entry are not
        compared: the operator may have moved an old (or broken) log aside.
        """
        start = self._when(entries[0].get("ts"))
        if start is None:
            return []
        logged = {("apply" if e.get("event") == "apply-completed" else str(e.get("event")),
                   str(e.get("digest", ""))) for e in entries}
        missing = []
        for event, digest, at in self.folder.recorded_actions():
            when = self._when(at)
            if when is not None and when >= start and (event, digest) not in logged:
                missing.append((event, digest, at))
        return sorted(missing, key=lambda m: m[2])

    def screen(self, stream: BinaryIO, name: str) -> list[Finding]:
        """Run the prompt-content rules on text (a file or stdin), capped in size.

        Raises:
            InputError: the text is too large or not UTF-8.
            ConfigError: the policy cannot be loaded.
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
