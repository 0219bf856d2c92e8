"""The sandbox over real HTTP: a threading server on loopback, faults applied on the wire.

:class:`SandboxServer` binds (loopback only unless ``allow_remote``), builds the router from
:mod:`.app` over a :class:`~.state.State`, and answers every request: parse, apply the
fault rule that fires (:mod:`.faults`), dispatch under the state lock, persist, write.
Handlers never touch sockets; this module never knows what an endpoint means.

Served roots: the platform under ``/api`` (both path generations), the OpenRouter subset
under ``/openrouter/api/v1``, test controls under ``/_sandbox/`` (no auth, sandbox only).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from impromptu_ops.atomic import private_dir
from impromptu_ops.errors import ConfigError, OpsError
from impromptu_ops.locks import ProcessLock
from impromptu_ops.sandbox import faults
from impromptu_ops.sandbox.app import build_router
from impromptu_ops.sandbox.config import SandboxConfig
from impromptu_ops.sandbox.router import ApiError, Request, Response, request_prefix
from impromptu_ops.sandbox.state import State

__all__ = ["SandboxConfig", "SandboxServer", "is_loopback", "run_until_signalled"]

log = logging.getLogger(__name__)

OPENROUTER_ROOT = "/openrouter/api/v1"
STATE_LOCK = ".lock"


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback literals (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body leave in one segment: with the default unbuffered writer and Nagle's
    # algorithm each answer waited ~40 ms for the client's delayed ACK.
    wbufsize = 64 * 1024
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # an idle or stalled client must not hold a thread forever
            self.connection.settimeout(self.server.sandbox.config.idle_timeout_seconds)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("sandbox: " + format, *args)

    def _any(self) -> None:
        self.server.sandbox.handle(self)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _any


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    sandbox: SandboxServer

    def __init__(self, address: tuple[str, int], sandbox: SandboxServer, family: int) -> None:
        self.address_family = family
        self.sandbox = sandbox
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up before the answer is written (a CLI that finished, a
        # timeout) is ordinary for a server; socketserver's default prints a traceback to
        # the host process's stderr, where it lands in another test's captured output.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)

    def close_all(self) -> None:
        with self.sockets_lock:
            sockets = list(self.open_sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class SandboxServer:
    """The simulated platform, served over HTTP.

    Args:
        config: behaviour (PoW, payment mode, limits).
        state_dir: where the state lives; a restart on the same folder loses nothing.
        host, port: bind address; port 0 picks a free port.
        allow_remote: permit a non-loopback ``host`` (never needed for tests).

    Raises:
        ConfigError: a non-loopback host without ``allow_remote``, a bad state folder, or
            the address cannot be bound.
        LockBusy: another sandbox serves the same state folder.
    """

    def __init__(self, config: SandboxConfig, state_dir: Path, *, host: str = "127.0.0.1",
                 port: int = 0, allow_remote: bool = False) -> None:
        if not is_loopback(host) and not allow_remote:
            raise ConfigError(f"sandbox refuses to bind to non-loopback address {host!r}",
                              hint="use 127.0.0.1, or pass --allow-remote if you really mean it")
        self.config = config
        # Two sandboxes writing one state folder would overwrite each other's answers.
        self._lock = ProcessLock(private_dir(state_dir) / STATE_LOCK, "sandbox")
        self._lock.acquire()
        try:
            self.state = State(state_dir, config)
            self.router = build_router(self.state)
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            try:
                self._httpd = _HTTPServer((host.strip("[]"), port), self, family)
            except OSError as exc:
                raise ConfigError(
                    f"sandbox cannot listen on {host}:{port}: {exc.strerror}") from None
        except BaseException:
            self._lock.release()
            raise
        bound_host, bound_port = self._httpd.server_address[:2]
        host_text = bound_host.decode() if isinstance(bound_host, bytes) else str(bound_host)
        shown = f"[{host_text}]" if family == socket.AF_INET6 else host_text
        self.port = int(bound_port)
        self.root_url = f"http://{shown}:{self.port}"
        self._thread: threading.Thread | None = None
        self._control: httpx.Client | None = None
        self._control_lock = threading.Lock()

    # --- public surface --------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"{self.root_url}/api"

    @property
    def openrouter_url(self) -> str:
        return f"{self.root_url}{OPENROUTER_ROOT}"

    @property
    def state_dir(self) -> Path:
        return self.state.dir

    def start(self) -> SandboxServer:
        """Serve in a background thread; returns at once, already listening."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,),
                                            name=f"sandbox:{self.port}", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, drop open connections, release the port. Idempotent."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        with self._control_lock:
            if self._control is not None:
                self._control.close()
                self._control = None
        self._httpd.close_all()
        self._httpd.server_close()
        with self.state.lock:
            self.state.save_if_changed()
        self._lock.release()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def control(self, method: str, path: str, json: Any = None) -> Any:
        """Call a ``/_sandbox/...`` control endpoint and return its JSON answer.

        Args:
            path: ``agents``, ``/agents`` or ``/_sandbox/agents``.

        Raises:
            OpsError: the control endpoint answered an error.
        """
        sub = path if path.startswith(faults.CONTROL_ROOT) else (
            f"{faults.CONTROL_ROOT}/{path.lstrip('/')}")
        with self._control_lock:
            if self._control is None:  # one client: building an httpx.Client costs ~0.1 s
                self._control = httpx.Client(timeout=30.0)
            client = self._control
        resp = client.request(method, self.root_url + sub, json=json)
        if resp.status_code >= 400:
            raise OpsError(f"sandbox control {method} {sub} failed: {resp.status_code} "
                           f"{resp.text[:300]}")
        return resp.json()

    # --- request handling ------------------------------------------------------------------
    def handle(self, h: _Handler) -> None:
        request_id = "req_" + uuid.uuid4().hex[:16]
        split = urlsplit(h.path)
        path = split.path
        method = h.command.upper()
        if h.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self._write(h, ApiError("VALIDATION_ERROR", "chunked request bodies are not "
                                    "supported").response(request_id), close=True)
            return
        try:
            length = int(h.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > self.config.max_body_bytes:
            err = ApiError("VALIDATION_ERROR", "request body too large or bad Content-Length",
                           fields={"body": [f"at most {self.config.max_body_bytes} bytes"]})
            self._write(h, err.response(request_id), close=True)
            return
        body = h.rfile.read(length) if length else b""
        req = Request(method=method, path=path, query=dict(parse_qsl(split.query)),
                      headers=dict(h.headers.items()), body=body, request_id=request_id,
                      prefix=request_prefix(path))
        rule = faults.take_fault(self.state, method, path, req.bearer())
        kind = rule["kind"] if rule else ""
        if kind == "latency":
            time.sleep(float(rule["delay"]) if rule else 0.0)
        elif kind == "drop":
            h.close_connection = True
            with contextlib.suppress(OSError):
                h.connection.shutdown(socket.SHUT_RDWR)
            return
        elif kind == "status" and rule:
            self._write(h, faults.status_error(rule).response(request_id))
            return
        resp = self.dispatch(req)
        if kind == "nulls":
            resp = faults.nullify(resp)
        if kind == "echo-key" and rule:
            resp = faults.echo_key(resp, req.bearer(), rule)
        if kind == "malformed":
            resp.raw = faults.malformed(resp.encoded())
        resp.headers.setdefault("X-Request-Id", request_id)
        self._write(h, resp, truncate=kind == "truncate")

    def dispatch(self, req: Request) -> Response:
        """Route ``req`` and run its handler under the state lock; errors become answers."""
        ticket = 0
        try:
            handler, req.params = self.router.match(req.method, req.path)
            try:
                with self.state.lock:
                    try:
                        return handler(req)
                    finally:
                        ticket = self.state.snapshot()
            finally:
                if ticket:  # durable before the answer leaves, outside the state lock
                    self.state.commit(ticket)
        except ApiError as exc:
            return exc.response(req.request_id)
        except Exception:  # a sandbox bug: answer like a platform would, keep serving
            log.exception("sandbox handler failed for %s %s", req.method, req.path)
            return ApiError("INTERNAL", "internal error in the sandbox").response(req.request_id)

    def _write(self, h: _Handler, resp: Response, *, truncate: bool = False,
               close: bool = False) -> None:
        data = resp.encoded()
        if isinstance(resp.body, dict) and isinstance(resp.body.get("requestId"), str):
            resp.headers.setdefault("X-Request-Id", resp.body["requestId"])
        try:
            h.send_response(resp.status)
            h.send_header("Content-Type", resp.content_type)
            h.send_header("Content-Length", str(len(data)))
            for name, value in resp.headers.items():
                h.send_header(name, value)
            if close or truncate:
                h.send_header("Connection", "close")
            h.end_headers()
            if h.command != "HEAD":
                h.wfile.write(data[: len(data) // 2] if truncate else data)
            h.wfile.flush()
        except OSError:
            log.debug("sandbox: client went away")
        if close or truncate:
            h.close_connection = True
            if truncate:
                with contextlib.suppress(OSError):
                    h.connection.shutdown(socket.SHUT_RDWR)


def run_until_signalled(server: SandboxServer, ready: Callable[[str], None]) -> None:
    """Serve until SIGINT or SIGTERM; call ``ready(base_url)`` once listening.

    Must run in the main thread (it installs signal handlers, restored on return).
    """
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.start()
        ready(server.base_url)
        while not stop.wait(0.1):
            pass
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
