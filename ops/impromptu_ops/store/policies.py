"""Private: Least-privilege Vault ACL policies for the three roles, rendered for one agent.

The templates live in ``policies/vault/<role>.hcl`` (``settings.paths.policies_dir``) with
``${mount}``, ``${prefix}``, ``${agent}``, ``${approle_mount}`` and ``${approle_role}``
placeholders (the AppRole role whose secret_id ``rotate vault-secret-id`` rotates; by
default ``impromptu-<agent>``):

- ``heartbeat``: read the platform key only (heartbeat and health checks);
- ``rotation``: read/write this agent's keys and their metadata, nothing else;
- ``operator``: administer this agent's path (destroy, metadata delete).

The conventional policy name is ``impromptu-<role>-<agent>`` (:func:`policy_name`).
This module renders text; loading it into Vault is the operator's (or a test's) job.
"""

from __future__ import annotations

import re
from pathlib import Path
from string import Template

from impromptu_ops import files
from impromptu_ops.errors import ConfigError, InputError
from impromptu_ops.store.base import check_name

ROLES = ("heartbeat", "rotation", "operator")
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}(/[A-Za-z0-9][A-Za-z0-9_-]{0,62})*$")


def policy_name(role: str, agent: str) -> str:
    return f"impromptu-{role}-{agent}"


def render_policy(policies_dir: Path, role: str, agent: str, mount: str = "secret",
                  prefix: str = "impromptu", *, approle_mount: str = "approle",
                  approle_role: str = "") -> str:
    """The HCL policy for ``role`` and ``agent``.

    Raises:
        InputError: unknown role, or an agent/mount/prefix that is not a plain path.
        ConfigError: the template file is missing.
    """
    if role not in ROLES:
        raise InputError(f"unknown policy role {role!r}: use one of {', '.join(ROLES)}")
    check_name(agent)
    approle_role = approle_role or f"impromptu-{agent}"
    for label, value in (("mount", mount), ("prefix", prefix), ("AppRole mount", approle_mount),
                         ("AppRole role", approle_role)):
        if not _SEGMENT.match(value.strip("/")):
            raise InputError(f"invalid Vault {label} {value[:40]!r}")
    path = policies_dir / "vault" / f"{role}.hcl"
    text = files.read_text(path, what="policy template", limit=files.MAX_POLICY_BYTES,
                           error=ConfigError)
    return Template(text).substitute(mount=mount.strip("/"), prefix=prefix.strip("/"),
                                     agent=agent, approle_mount=approle_mount.strip("/"),
                                     approle_role=approle_role.strip("/"))
