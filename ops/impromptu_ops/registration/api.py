"""Private: The seam to the platform for registration: two endpoints and accept-tos.

Registration needs more than the usual typed calls: the 428 and 402 answers (and the
POW_*/PAYMENT_* refusals) are the server saying what it still needs, and their bodies (the
payment request, the refusal's message) matter. :class:`ClientRegistrationApi` adapts
:class:`impromptu_ops.platform.client.PlatformClient`, whose ``register_attempt`` returns
those as answers and never resends a registration that may have reached the server
(a resent registration could create a second agent, or lose the first answer's key).

This module owns no registration logic (see :mod:`.flow`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from impromptu_ops.errors import ConnectFailed, DeadlineExceeded, TransportError
from impromptu_ops.secret import Secret

if TYPE_CHECKING:
    from impromptu_ops.platform.client import PlatformClient

NEEDS_POW = 428
NEEDS_PAYMENT = 402


@dataclass(frozen=True)
class Answer:
    """One answer to ``POST /agents/register``: 2xx (done), or a POW_*/PAYMENT_* code.

    ``body`` is the JSON object; ``apiKey`` and ``walletPrivateKey`` may be Secrets.
    """

    status: int
    code: str | None
    body: Mapping[str, Any]

    def error_text(self) -> tuple[str, str | None]:
        """The refusal's message and hint, from the nested or the flat error shape."""
        err = self.body.get("error")
        src = err if isinstance(err, Mapping) else self.body
        message, hint = src.get("message"), src.get("hint")
        return (message if isinstance(message, str) else f"HTTP {self.status}",
                hint if isinstance(hint, str) else None)


def never_sent(exc: TransportError) -> bool:
    """Whether a failed ``POST /agents/register`` certainly never reached the server.

    The platform client resends that POST only when the connection itself failed (nothing
    left the process): a :class:`~impromptu_ops.errors.ConnectFailed`, or a
    :class:`~impromptu_ops.errors.DeadlineExceeded` that ended a series of them (its
    ``__cause__`` is the last attempt's error), means no attempt was sent; any other
    transport failure may have registered the agent.
    """
    if isinstance(exc, DeadlineExceeded):
        return isinstance(exc.__cause__, ConnectFailed)
    return isinstance(exc, ConnectFailed)


class RegistrationApi(Protocol):
    def register(self, body: Mapping[str, Any]) -> Answer:
        """Raises PlatformError for anything other than 2xx and POW_*/PAYMENT_* answers."""
        ...

    def challenge(self) -> Any:
        """The raw challenge JSON (parsed and validated by the caller)."""
        ...

    def accept_tos(self, api_key: Secret) -> Mapping[str, Any]:
        ...


ClientFactory = Callable[["Secret | None"], "PlatformClient"]
"""Builds a platform client sending the given key (None: no key)."""


class ClientRegistrationApi:
    """:class:`RegistrationApi` over the platform client (v1 or legacy paths).

    Args:
        make_client: builds the platform clients it uses (the composition root's, see
            :meth:`impromptu_ops.api.Agent.platform`): one without a key for the
            registration calls, one with the new key to accept the terms.
    """

    def __init__(self, make_client: ClientFactory) -> None:
        self._make_client = make_client
        self._client = make_client(None)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> ClientRegistrationApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def register(self, body: Mapping[str, Any]) -> Answer:
        answer = self._client.register_attempt(body)
        return Answer(answer.status, answer.code, answer.body)

    def challenge(self) -> Any:
        return self._client.register_challenge().raw

    def accept_tos(self, api_key: Secret) -> Mapping[str, Any]:
        with self._make_client(api_key) as client:
            return client.accept_tos().raw
