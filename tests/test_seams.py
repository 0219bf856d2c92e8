"""The typed seams between domains (issue 16, Build 2): values, not strings, carry the
contracts. Server-free: each test feeds the seam a value and checks what the other side does.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from impromptu_ops import contract
from impromptu_ops.api import Agent
from impromptu_ops.errors import ConnectFailed, DeadlineExceeded, TransportError
from impromptu_ops.health.model import Status
from impromptu_ops.health.policy import default_policy
from impromptu_ops.platform.client import PlatformClient
from impromptu_ops.registration.api import never_sent
from impromptu_ops.rotation.keycheck import KeyCheck, Verdict
from impromptu_ops.secret import Secret
from impromptu_ops.settings import PlatformSettings, load_settings
from impromptu_ops.store.base import StoreStatus
from impromptu_ops.store.local import LocalStore


def _deadline_after(cause: TransportError) -> DeadlineExceeded:
    try:
        raise DeadlineExceeded("gave up") from cause
    except DeadlineExceeded as exc:
        return exc


def test_never_sent_reads_the_error_type_not_its_text() -> None:
    assert never_sent(ConnectFailed("anything at all"))
    assert never_sent(_deadline_after(ConnectFailed("x")))
    # the words alone no longer decide: a transport error that may have been sent says so
    assert not never_sent(TransportError("POST /agents/register: cannot connect to h: x"))
    assert not never_sent(_deadline_after(TransportError("timed out")))
    assert not never_sent(DeadlineExceeded("no cause"))


def test_a_refused_connection_is_connect_failed() -> None:
    """The platform client raises the typed error for a port nobody listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = PlatformSettings(api_url=f"http://127.0.0.1:{port}/api", max_retries=0)
    with PlatformClient(settings, None) as client, pytest.raises(ConnectFailed) as err:
        client.health()
    assert never_sent(err.value)


class _StatusStore(LocalStore):
    """A local store whose check() reports a given status (the health check's input)."""

    status = StoreStatus("")

    def check(self) -> StoreStatus:
        return self.status


@pytest.mark.parametrize(("status", "verdict"), [
    (StoreStatus("vault: active, token auth, token ttl 99999s", token_ttl=120),
     Status.CRITICAL),  # the number is read from the value, not from the words
    (StoreStatus("vault: active, token auth, token ttl 5s", token_ttl=None), Status.OK),
    (StoreStatus("vault: active, token auth", token_ttl=1800), Status.WARNING),
    (StoreStatus("vault: active, token auth", token_ttl=7200), Status.OK),
])
def test_health_store_check_reads_the_structured_ttl(tmp_path: Path, status: StoreStatus,
                                                     verdict: Status) -> None:
    store = _StatusStore(tmp_path / "s.store", tmp_path / "s.key", passphrase=None)
    store.status = status
    settings = load_settings({"paths.state_dir": str(tmp_path)}, env={},
                             config_file=tmp_path / "none.toml")
    (result,) = Agent(settings, store=store).health(checks=("store",),
                                                    policy=default_policy()).results
    assert result.status is verdict, result
    assert result.summary == status.summary
    assert [p.value for p in result.perf] == ([] if status.token_ttl is None
                                              else [status.token_ttl])


def test_local_store_status_has_no_token(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s.store", tmp_path / "s.key", passphrase=None)
    store.write(contract.IMPROMPTU_API_KEY, {"value": Secret("impr_sk_" + "a" * 40)}, cas=0)
    status = store.check()
    assert status.token_ttl is None and "1 secrets" in status.summary
    assert str(status) == status.summary


def test_key_check_renders_as_before() -> None:
    """The engine branches on the verdict; its notes keep the old wording."""
    assert str(KeyCheck(Verdict.OK)) == "ok"
    assert str(KeyCheck(Verdict.REFUSED, "UNAUTHORIZED")) == "refused: UNAUTHORIZED"
    assert str(KeyCheck(Verdict.UNKNOWN, "timed out")) == "unknown: timed out"


def test_secret_names_are_the_contract_constants() -> None:
    assert contract.SECRET_NAMES == (
        contract.IMPROMPTU_API_KEY, contract.OPENROUTER_API_KEY,
        contract.OPENROUTER_MANAGEMENT_KEY, contract.OPENROUTER_PROVISIONING_KEY,
        contract.WALLET_PRIVATE_KEY, contract.VAULT_SECRET_ID)
    assert set(contract.SECRET_ENV) == set(contract.SECRET_NAMES)
    assert set(contract.RUNTIME_SECRET_NAMES) <= set(contract.SECRET_NAMES)
