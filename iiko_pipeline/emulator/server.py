"""The HTTP layer: a stdlib `ThreadingHTTPServer` speaking HTTP/1.1 like Tomcat does.

HTTP/1.1 with a hand-written body writer gives full control over what a client sees: Content-Length
for small bodies, chunked transfer for large streamed exports, gzip when asked for, and deliberate
damage (a cut body with a matching Content-Length, a connection reset mid-body via SO_LINGER 0).
"""

from __future__ import annotations

import contextlib
import signal
import socket
import ssl
import struct
import sys
import threading
import zlib
from collections.abc import Iterable, Iterator
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from urllib.parse import parse_qs, unquote, urlsplit

from iiko_pipeline.loopback import is_loopback

from . import control, faults, resto
from .config import EmulatorConfig
from .reply import Reply, text
from .state import EmulatorState

SERVER_HEADER = "Apache-Coyote/1.1"
GZIP_MIN_SIZE = 256
_DISCONNECTS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError, ssl.SSLError)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 64
    state: EmulatorState

    def handle_error(self, request: object, client_address: object) -> None:
        """Stay quiet about clients that vanish or fail the TLS handshake; report real bugs."""
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):  # resets, broken pipes, timeouts, TLS failures
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]


def _pieces(body: bytes | Iterable[str | bytes]) -> Iterator[bytes]:
    if isinstance(body, bytes):
        yield body
        return
    for piece in body:
        yield piece.encode("utf-8") if isinstance(piece, str) else piece


class EmulatorHandler(BaseHTTPRequestHandler):
    """One connection; requests on it are served one after another (keep-alive)."""

    protocol_version = "HTTP/1.1"
    server: _HTTPServer
    timeout = 120  # idle keep-alive connections are dropped after this

    def setup(self) -> None:
        super().setup()
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.do_handshake()  # here, in the worker thread, not in accept()
        # Headers and body go out in separate writes; without TCP_NODELAY, Nagle plus delayed ACKs
        # add ~40 ms to every keep-alive request.
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def version_string(self) -> str:
        return SERVER_HEADER

    def log_message(self, format: str, *args: object) -> None:
        """Silent: the default logs the request line, which carries `pass` and `key`."""

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    # ------------------------------------------------------------------ request parsing

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            data = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(data)
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _parse(self, raw_body: bytes) -> resto.Request:
        split = urlsplit(self.path)
        query = parse_qs(split.query, keep_blank_values=True)
        form: dict[str, list[str]] = {}
        if "application/x-www-form-urlencoded" in self.headers.get("Content-Type", "") and raw_body:
            form = parse_qs(raw_body.decode("utf-8", "replace"), keep_blank_values=True)
        cookies: dict[str, str] = {}
        if self.headers.get("Cookie"):
            jar = SimpleCookie()
            with contextlib.suppress(CookieError):
                jar.load(self.headers["Cookie"])
            cookies = {k: m.value for k, m in jar.items()}
        return resto.Request(self.command, unquote(split.path), query, form, cookies, self.headers, raw_body)

    def _dispatch(self) -> None:
        raw_body = self._read_body()
        req = self._parse(raw_body)
        state = self.server.state
        try:
            if req.path == control.PREFIX or req.path.startswith(control.PREFIX + "/"):
                refused = control.refuse_unauthorised(state.config.control_token, self.headers.get("Authorization"))
                self._send(refused or control.handle(state, req, raw_body), gzip_ok=False)
            elif req.path.startswith("/resto/") or req.path == "/resto":
                self._handle_resto(state, req)
            else:
                self._send(text(404, f"Not found: {req.path}"), gzip_ok=False)
        except _DISCONNECTS:
            self.close_connection = True

    # ------------------------------------------------------------------ iiko requests

    def _handle_resto(self, state: EmulatorState, req: resto.Request) -> None:
        route = resto.resolve(req.path)
        rec = state.log.begin(req.method, route.name if route else "unknown")
        rec.key_present = bool(req.key())
        gzip_ok = state.config.gzip and "gzip" in self.headers.get("Accept-Encoding", "").lower()
        session = None
        self._headers_sent = False
        try:
            if route is None or not resto.available(state, route):
                # An unknown path, or one this server version does not have yet (logged under its name).
                rec.status = 404
                self._send(text(404, f"Not found: {req.path}"), gzip_ok=False)
                return
            session, inflight = resto.track(state, route, req, rec)
            fault = state.faults.pick(route.name)
            if fault is not None:
                rec.fault = fault.kind
                if fault.kind in faults.DELAY_KINDS:
                    state.stop_event.wait(fault.delay)
                    fault = None
                elif fault.kind in faults.EXPIRE_KINDS:
                    if session is not None:
                        state.sessions.expire(session.token)
                    fault = None
                elif fault.kind in faults.REPLACE_KINDS:
                    reply = faults.replacement(fault.kind)
                    rec.status = reply.status
                    rec.bytes_sent = self._send(reply, gzip_ok)
                    return
            reply = resto.execute(state, route, req, rec, session, inflight)
            rec.status = reply.status
            if fault is not None and fault.kind == "reset":
                self._send_reset(reply, gzip_ok)
            else:
                if fault is not None:
                    reply = faults.transform(fault.kind, reply)
                rec.bytes_sent = self._send(reply, gzip_ok)
        except _DISCONNECTS:
            self.close_connection = True
        except Exception:
            # An emulator bug must still look like a server error to the client, not a hang.
            rec.status = 500
            if not self._headers_sent:
                self._send(text(500, "java.lang.NullPointerException"), gzip_ok=False)
            raise
        finally:
            if session is not None:
                state.sessions.end(session)
            state.log.end(rec)

    # ------------------------------------------------------------------ writing

    def _headers(self, reply: Reply, extra: list[tuple[str, str]]) -> None:
        self._headers_sent = True
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        for name, value in [*reply.headers, *extra]:
            self.send_header(name, value)
        self.end_headers()

    def _send(self, reply: Reply, gzip_ok: bool) -> int:
        """Write the reply: Content-Length when it fits in `stream_threshold`, else chunked. Returns
        the number of body bytes written (after compression)."""
        threshold = self.server.state.config.stream_threshold
        pieces = _pieces(reply.body)
        head: list[bytes] = []
        size = 0
        exhausted = True
        for piece in pieces:
            head.append(piece)
            size += len(piece)
            if size > threshold:
                exhausted = False
                break
        gzip_ok = gzip_ok and reply.status == 200
        if exhausted:
            data = b"".join(head)
            extra: list[tuple[str, str]] = []
            if gzip_ok and len(data) >= GZIP_MIN_SIZE:
                comp = zlib.compressobj(6, zlib.DEFLATED, 31)
                data = comp.compress(data) + comp.flush()
                extra += [("Content-Encoding", "gzip"), ("Vary", "Accept-Encoding")]
            extra.append(("Content-Length", str(len(data))))
            self._headers(reply, extra)
            self.wfile.write(data)
            return len(data)

        extra = [("Transfer-Encoding", "chunked")]
        comp = None
        if gzip_ok:
            comp = zlib.compressobj(1, zlib.DEFLATED, 31)
            extra += [("Content-Encoding", "gzip"), ("Vary", "Accept-Encoding")]
        self._headers(reply, extra)
        written = 0
        buf: list[bytes] = []
        buffered = 0

        def flush_chunk(data: bytes) -> None:
            nonlocal written
            if data:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                written += len(data)

        def feed(data: bytes) -> None:
            nonlocal buffered
            if comp is not None:
                data = comp.compress(data)
            if data:
                buf.append(data)
                buffered += len(data)
            if buffered >= threshold:
                flush_chunk(b"".join(buf))
                buf.clear()
                buffered = 0

        try:
            for piece in head:
                feed(piece)
            for piece in pieces:
                feed(piece)
        except Exception:
            # The body generator failed after the headers went out: the only honest signal left is
            # to break the connection so the client sees an incomplete chunked body.
            self._hard_close()
            raise
        if comp is not None:
            buf.append(comp.flush())
        flush_chunk(b"".join(buf))
        self.wfile.write(b"0\r\n\r\n")
        return written

    def _send_reset(self, reply: Reply, gzip_ok: bool) -> None:
        """Announce the full body, send about half of it, then reset the connection (RST)."""
        data = reply.materialize()
        extra: list[tuple[str, str]] = []
        if gzip_ok and reply.status == 200 and len(data) >= GZIP_MIN_SIZE:
            data = zlib.compress(data, 6, wbits=31)
            extra += [("Content-Encoding", "gzip"), ("Vary", "Accept-Encoding")]
        extra.append(("Content-Length", str(len(data))))
        self._headers(reply, extra)
        self.wfile.write(data[: len(data) // 2])
        self._hard_close()

    def _hard_close(self) -> None:
        """Close with SO_LINGER 0 so the peer gets a TCP RST instead of a clean FIN."""
        self.close_connection = True
        conn = self.connection
        with contextlib.suppress(OSError):
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with contextlib.suppress(OSError):
            self.rfile.close()  # drop makefile()'s reference so close() really closes the fd
        with contextlib.suppress(OSError):
            conn.close()


class EmulatorServer:
    """A running emulator: `with EmulatorServer(cfg) as emu: emu.url, emu.state`."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.state = EmulatorState(self.config)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("emulator is not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """`http://host:port` with the real bound port (clients append `/resto/api`)."""
        scheme = "https" if self.config.certfile else "http"
        return f"{scheme}://{self.config.host}:{self.port}"

    def start(self) -> EmulatorServer:
        """Bind and serve in a daemon thread; returns self."""
        if self._httpd is not None:
            return self
        httpd = _HTTPServer((self.config.host, self.config.port), EmulatorHandler)
        httpd.state = self.state
        if self.config.certfile:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.config.certfile, self.config.keyfile)
            httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True, do_handshake_on_connect=False)
        self.state.stop_event.clear()
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"iiko-emulator-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port (wakes any `slow` fault that is sleeping)."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self.state.stop_event.set()
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def exposure_warning(host: str, control_token: str | None = None) -> str | None:
    """The line printed when the emulator listens beyond loopback (None on loopback)."""
    if is_loopback(host):
        return None
    control = ("its control API (/_emulator) asks for the control token" if control_token else
               "anyone who reaches it can also drive its control API (/_emulator): set --control-token")
    return (f"WARNING: the emulator listens on {host or 'every interface'}, beyond loopback: anyone who reaches "
            f"it can read its data; {control}. Use --host 127.0.0.1 unless that is what you want.")


def serve_forever(config: EmulatorConfig) -> None:
    """Run until Ctrl-C or SIGTERM. Prints exactly one line, `listening on <url>`, once bound."""
    server = EmulatorServer(config).start()
    previous = None

    def _terminate(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        warning = exposure_warning(config.host, config.control_token)
        if warning:
            print(warning, file=sys.stderr, flush=True)
        print(f"listening on {server.url}", flush=True)
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


serve = serve_forever
