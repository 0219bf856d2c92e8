"""Secret masking and the redactor: nothing secret-shaped survives into text."""

from __future__ import annotations

import logging
import pickle
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from impromptu_ops.logs import JsonFormatter, RedactingFilter
from impromptu_ops.secret import REDACTOR, Redactor, Secret, mask

URLSAFE = string.ascii_letters + string.digits + "-_"
platform_keys = st.text(alphabet=URLSAFE, min_size=40, max_size=40).map(lambda s: "impr_sk_" + s)
openrouter_keys = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64).map(
    lambda s: "sk-or-v1-" + s
)


def test_secret_textual_forms_are_masked() -> None:
    value = "impr_sk_" + "A" * 36 + "wxyz"
    s = Secret(value, "impromptu-api-key")
    for text in (str(s), repr(s), f"{s}", f"{s:>60}", "%s" % s):  # noqa: UP031 - %-formatting must mask too
        assert value not in text
    assert str(s).endswith("wxyz") and str(s).startswith("impr_sk_")
    assert s.reveal() == value


def test_secret_refuses_pickle() -> None:
    with pytest.raises(TypeError):
        pickle.dumps(Secret("some-secret-value"))


def test_short_values_are_fully_masked() -> None:
    assert mask("hunter2") == "****"


@given(platform_keys, st.text(max_size=50), st.text(max_size=50))
def test_redactor_masks_unregistered_platform_key_shapes(key: str, pre: str, post: str) -> None:
    out = REDACTOR.redact(f"{pre} {key} {post}")
    assert key not in out


@given(openrouter_keys)
def test_redactor_masks_openrouter_shapes(key: str) -> None:
    assert key not in REDACTOR.redact(f"export OPENROUTER_API_KEY={key}")


@given(st.text(alphabet=string.printable, min_size=12, max_size=60))
def test_registered_secret_never_survives(value: str) -> None:
    # A private redactor: registering arbitrary text in the process-wide one would mangle
    # the output of every later test.
    redactor = Redactor()
    redactor.register(value)
    redacted = redactor.redact(f"before {value} after {value}")
    assert value not in redacted


def test_logging_filter_redacts_message_args_and_exception() -> None:
    value = "opaque-secret-" + "q" * 20
    Secret(value)
    record = logging.LogRecord("t", logging.ERROR, __file__, 1, "token=%s", (value,), None)
    try:
        raise RuntimeError(f"failed with {value}")
    except RuntimeError:
        import sys

        record.exc_info = sys.exc_info()
    assert RedactingFilter().filter(record)
    formatted = JsonFormatter().format(record)
    assert value not in formatted
    assert "token=" in formatted
