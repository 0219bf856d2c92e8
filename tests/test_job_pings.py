"""Every scheduled job pings like a healthchecks.io client, and "skipped" alerts no one.

A loopback receiver plays healthchecks.io's Pinging API as documented
(https://healthchecks.io/docs/http_api/ : success ``<uuid>``, ``<uuid>/start``,
``<uuid>/fail``, ``<uuid>/<exit-status>`` where any non-zero status is a failure;
https://healthchecks.io/docs/signaling_failures/ ; run ids ``?rid=<uuid>`` from
https://healthchecks.io/docs/measuring_script_run_time/): it records each request and can
answer 5xx a given number of times. Strictest reading: a ``rid`` must be a canonical
lowercase UUID, or the receiver answers 400 as a real server may.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from impromptu_ops.jobs.ping import Pinger, job_url, ping_url
from impromptu_ops.locks import ProcessLock
from impromptu_ops.settings import load_settings
from tests.fixtures_jobs import Agent, ops

UUID = "5a4f7c2e-0d6b-4c1e-9a53-2f3c9b6d8e10"
_RID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_PATH = re.compile(rf"^/ping/{UUID}(?:/(start|fail|log|\d{{1,3}}))?$")


@dataclass
class Hit:
    kind: str  # success, start, fail, log, or the exit status
    rid: str
    body: str


@dataclass
class Receiver:
    url: str
    hits: list[Hit] = field(default_factory=list)
    fail_next: int = 0  # answer 503 to this many requests first
    requests: int = 0


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver("")

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            state.requests += 1
            parts = urlsplit(self.path)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            m = _PATH.match(parts.path)
            rid = parse_qs(parts.query).get("rid", [""])[0]
            if m is None or (rid and not _RID.match(rid)):
                self.send_response(400 if m else 404)
                self.end_headers()
                return
            if state.fail_next > 0:
                state.fail_next -= 1
                self.send_response(503)
                self.end_headers()
                return
            state.hits.append(Hit(m.group(1) or "success", rid, body.decode()))
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"OK")

        do_GET = do_POST = do_HEAD = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/ping/{UUID}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def test_a_skipped_run_pings_success_with_the_reason_not_75(
        agent: Agent, receiver: Receiver) -> None:
    settings = load_settings()
    settings.paths.state_dir.mkdir(parents=True, exist_ok=True)
    lock = ProcessLock(settings.paths.state_dir / "heartbeat.lock", "heartbeat")
    lock.acquire()  # another run holds the lock
    try:
        proc = ops("heartbeat", "--json", "--ping-url", receiver.url)
    finally:
        lock.release()
    assert proc.returncode == 75, proc.stderr
    kinds = [h.kind for h in receiver.hits]
    assert kinds == ["start", "success"], kinds  # never /75, never /fail
    assert "skipped" in receiver.hits[1].body and "lock" in receiver.hits[1].body
    assert receiver.hits[0].rid == receiver.hits[1].rid and _RID.match(receiver.hits[0].rid)


def test_skipped_exit_code_0_for_cron_and_kubernetes_still_logs_why(
        agent: Agent, receiver: Receiver) -> None:
    agent.fault(path="/agent/heartbeat$", kind="status", status=429, code="RATE_003", times=1)
    proc = ops("heartbeat", "--skipped-exit-code", "0", "--ping-url", receiver.url)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "skipped" in proc.stderr and "RATE_003" in proc.stdout + proc.stderr
    assert [h.kind for h in receiver.hits] == ["start", "success"]
    assert "RATE_003" in receiver.hits[1].body


def test_a_failed_run_pings_fail_with_its_output(receiver: Receiver) -> None:
    """No platform key in the store: the heartbeat fails, /fail carries its own words.
    The receiver answers 503 twice first: the /start ping is retried and lands."""
    receiver.fail_next = 2
    proc = ops("heartbeat", "--ping-url", receiver.url,
               env={"IMPROMPTU_JOBS_PING_BACKOFF": "0.05"})
    assert proc.returncode not in (0, 75), proc.stdout + proc.stderr
    assert [h.kind for h in receiver.hits] == ["start", "fail"]
    assert receiver.requests == 4  # 503, 503, start, fail
    body = receiver.hits[1].body
    assert body.startswith(f"exit {proc.returncode}\n")
    assert proc.stdout.strip().splitlines()[-1] in body  # the job's own output


def test_pings_retry_a_5xx_twice_then_land(receiver: Receiver) -> None:
    slept: list[float] = []
    receiver.fail_next = 2
    pinger = Pinger(receiver.url, attempts=3, backoff=0.5, sleep=slept.append)
    assert pinger.fail(1, "boom\n") is True
    assert receiver.requests == 3 and slept == [0.5, 1.0]
    assert [h.kind for h in receiver.hits] == ["fail"] and "boom" in receiver.hits[0].body


def test_a_4xx_is_not_retried_and_never_fails_the_caller(receiver: Receiver) -> None:
    slept: list[float] = []
    pinger = Pinger(receiver.url + "/../nope", attempts=3, sleep=slept.append)
    assert pinger.success() is False and slept == [] and receiver.requests == 1
    dead = Pinger("http://127.0.0.1:9/x", attempts=2, backoff=0.01, timeout=0.5,
                  sleep=slept.append)
    assert dead.start() is False and slept == [0.01]


def test_the_failure_body_is_the_last_bytes() -> None:
    p = Pinger("http://127.0.0.1:9/x", body_bytes=10)
    assert p.tail("0123456789abcdef") == "6789abcdef"
    assert p.tail("é" * 20).encode() == ("é" * 5).encode()


def test_urls_and_the_job_placeholder() -> None:
    assert ping_url("https://hc.example/p/K/", "start", "r") == "https://hc.example/p/K/start?rid=r"
    assert ping_url("https://hc.example/p/K?x=1&rid=old", "", "r") == (
        "https://hc.example/p/K?x=1&rid=r")
    assert job_url("https://hc-ping.com/KEY/impromptu-{job}", "rotate") == (
        "https://hc-ping.com/KEY/impromptu-rotate")
    assert job_url("https://hc-ping.com/uuid", "heartbeat") == "https://hc-ping.com/uuid"
    assert job_url("https://hc-ping.com/uuid", "rotate") == ""  # one check: the heartbeat's


def test_every_job_command_can_ping(receiver: Receiver) -> None:
    """health (no platform configured: UNKNOWN) pings /start then /fail through the same
    wrapper; the job name fills {job}."""
    ops("health", "--format", "nagios", "--check", "config",
        env={"IMPROMPTU_JOBS_PING_URL": receiver.url})
    assert receiver.hits == [], "without {job} the URL is the heartbeat's check only"
    ops("health", "--format", "nagios", "--check", "config",
        env={"IMPROMPTU_JOBS_PING_URL": receiver.url.replace(UUID, "{job}")})
    assert receiver.requests == 2  # /ping/health/start and /ping/health: 404 here, sent
    proc = ops("health", "--format", "nagios", "--check", "config",
               "--ping-url", receiver.url)
    kinds = [h.kind for h in receiver.hits]
    assert kinds[0] == "start" and kinds[1] == ("success" if proc.returncode == 0 else "fail")
    assert "IMPROMPTU" in receiver.hits[1].body


@given(st.text(max_size=300), st.integers(min_value=1, max_value=64))
def test_the_tail_is_a_bounded_suffix(text: str, limit: int) -> None:
    tail = Pinger("http://127.0.0.1:9/x", body_bytes=limit).tail(text)
    assert len(tail.encode("utf-8", "replace")) <= max(limit, len(text.encode("utf-8",
                                                                              "replace")))
    assert text.encode("utf-8", "replace").endswith(tail.encode("utf-8", "replace"))
    if len(text.encode("utf-8", "replace")) > limit:
        assert len(tail.encode()) <= limit


@given(st.from_regex(r"[a-z0-9/_.~-]{0,30}", fullmatch=True),
       st.from_regex(r"([a-z]{1,5}=[a-z0-9]{0,5}&){0,3}(rid=[a-z]{0,4})?", fullmatch=True))
def test_the_rid_is_set_once_and_the_check_stays_the_same(path: str, query: str) -> None:
    base = f"https://hc.example/{path}" + (f"?{query}" if query else "")
    url = ping_url(base, "fail", UUID)
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc) == ("https", "hc.example")
    assert parse_qs(parts.query)["rid"] == [UUID] and parts.path.endswith("/fail")


def test_a_malformed_url_is_not_retried(receiver: Receiver) -> None:
    slept: list[float] = []
    assert Pinger("http://127.0.0.1:bad/x", sleep=slept.append).success() is False
    assert slept == []
