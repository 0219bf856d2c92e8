"""Challenge parsing refuses every malformed or hostile shape with one clear message."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from impromptu_ops.errors import MalformedResponse
from impromptu_ops.pow.challenge import parse_challenge, parse_solution

GOOD: dict[str, Any] = {
    "chainId": "6f1c1a8e-6f34-4a43-9d6a-1f2f0d1b2c3d",
    "algorithm": "argon2id",
    "params": {"memoryKiB": 131072, "iterations": 1, "parallelism": 1, "hashLength": 32},
    "rounds": [{"index": i, "salt": base64.b64encode(bytes([i]) * 16).decode(), "difficulty": 4}
               for i in range(10)],
    "expiresAt": "2026-11-24T20:00:00Z",
}


def with_change(path: list[Any], value: Any) -> dict[str, Any]:
    obj = copy.deepcopy(GOOD)
    target: Any = obj
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return obj


def test_good_challenge_round_trips() -> None:
    challenge = parse_challenge(GOOD)
    assert parse_challenge(json.loads(json.dumps(challenge.to_json()))) == challenge
    assert challenge.params.memory_kib == 131072 and len(challenge.rounds) == 10


@pytest.mark.parametrize(("path", "value", "message"), [
    (["rounds"], KeyError, "rounds must be a non-empty list"),
    (["rounds"], [], "rounds must be a non-empty list"),
    (["rounds", 3, "salt"], "not*base64!", "rounds[3].salt is not valid base64"),
    (["rounds", 3, "salt"], "AAAA", "rounds[3].salt has 3 bytes"),
    (["rounds", 0, "difficulty"], 0, "rounds[0].difficulty=0 is outside 1..64"),
    (["rounds", 0, "difficulty"], 300, "rounds[0].difficulty=300 is outside 1..64"),
    (["rounds", 0, "difficulty"], "4", "rounds[0].difficulty must be an integer"),
    (["rounds", 0, "difficulty"], True, "rounds[0].difficulty must be an integer"),
    (["rounds", 1, "index"], 5, "rounds[1].index is 5, expected 1"),
    (["params", "memoryKiB"], 0, "params.memoryKiB=0 is outside"),
    (["params", "memoryKiB"], 64 * 1024 * 1024, "params.memoryKiB=67108864 is outside"),
    (["params"], KeyError, "params must be an object"),
    (["chainId"], "not-a-uuid", "chainId is not a UUID"),
    (["algorithm"], "scrypt", "unsupported algorithm"),
    (["expiresAt"], "tomorrow", "expiresAt is not an RFC 3339 timestamp"),
    (["expiresAt"], "2026-11-24T20:00:00", "expiresAt has no time zone"),
])
def test_malformed_challenges_are_refused(path: list[Any], value: Any, message: str) -> None:
    with pytest.raises(MalformedResponse) as info:
        parse_challenge(with_change(path, value))
    assert message in info.value.diagnostics()
    assert "\n" not in info.value.diagnostics()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                 max_size=4),
    max_leaves=20,
)


@given(st.sampled_from(["chainId", "algorithm", "params", "rounds", "expiresAt"]), json_values)
def test_any_hostile_field_value_is_parsed_or_refused_cleanly(key: str, value: Any) -> None:
    obj = with_change([key], value)
    try:
        parse_challenge(obj)
    except MalformedResponse as exc:
        assert exc.diagnostics().startswith("malformed PoW challenge")


@given(json_values)
def test_any_hostile_document_is_refused_cleanly(value: Any) -> None:
    with pytest.raises(MalformedResponse):
        parse_challenge(value)


def test_solution_parsing_refuses_bad_nonces() -> None:
    assert parse_solution({"chainId": "c", "nonces": [1, 2]}, 2).nonces == (1, 2)
    for bad in ([1], [1, -1], [1, 2**63], [1, True], [1, "2"]):
        with pytest.raises(MalformedResponse):
            parse_solution({"chainId": "c", "nonces": bad}, 2)
