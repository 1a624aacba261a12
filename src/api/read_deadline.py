"""gunicorn's threaded worker with a read deadline: a slow client cannot hold the API's threads.

gunicorn's `gthread` hands a connection to a pool thread as soon as it is readable, and the thread then
blocks until the request head (and later the body) has arrived: a client that sends one byte now and
then holds a thread, and threads × workers such clients make `/health` hang (slowloris).

Here every connection has `CLIENT_READ_TIMEOUT_S` to send its request, head and body, counted from its
accept (or from the first byte of a next request on a kept-alive connection):
- Heads are read by the worker's main loop (its selector, where gthread already parks kept-alive
  connections), without a thread; only a connection with a whole head goes to a thread. Past the
  deadline the loop answers 408 and closes; a head over 64 KiB is answered 431.
- Bodies are read on a thread, but at most half the threads read bodies at once (the others wait in the
  loop), and every read on the socket waits no longer than what is left of the deadline. A body still
  arriving at the deadline raises `ClientTooSlow` (a werkzeug 408) inside the app, which answers 408
  (JSON), and the connection closes. One client address has at most a quarter of the slots (at least
  one): the queue's other bodies go first. A body the app left unread (a 401, a 413) is dropped by the
  loop (`linger`), not on a thread holding a slot.
- Answers are written with the same timeout per write (`sendall`'s is the budget of the whole call):
  a client that does not take its answer is closed, and the thread freed.
- On SIGTERM the worker ends its event streams (`api.events`: their clients resume with `Last-Event-ID`),
  stops accepting but serves what is under way (heads, queued bodies, requests),
  each within its deadline and gunicorn's graceful_timeout, then exits.
TLS connections keep gthread's own behaviour (the platform serves plain HTTP behind its proxy).
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import selectors
import socket
import time
from collections import deque
from concurrent import futures
from functools import partial
from typing import Any

from gunicorn.http.body import LengthReader
from gunicorn.workers.gthread import TConn, ThreadWorker

from api.events import STOPPING
from api.request_reading import (
    HEAD_END,
    HEAD_TOO_LARGE,
    MAX_HEAD_BYTES,
    TOO_SLOW,
    ClientTooSlow,
    DeadlineSocket,
    body_follows,
)
from common.settings import get_settings

LINGER_S = 2.0  # after a refusal, how long the rest of what the client sends is read and dropped


class ReadDeadlineWorker(ThreadWorker):
    """gthread, with request heads read in the main loop and every request read within its deadline."""

    def init_process(self) -> None:
        self.read_timeout_s = get_settings().client_read_timeout_s
        self.body_slots = max(1, self.cfg.threads // 2)
        self.slots_per_peer = max(1, self.body_slots // 4)  # one client cannot take every slot
        self.body_readers = 0  # requests with a body on a thread now (pool threads release: under the lock)
        self.peer_readers: dict[str, int] = {}  # the same, per client address (under the lock)
        self.to_linger: deque[TConn] = deque()  # answered on a thread, body unread: the loop lingers on them
        self.heads: dict[TConn, float] = {}  # connections whose head is being read → deadline
        self.body_queue: deque[TConn] = deque()  # heads read, waiting for a body slot
        self.lingering: dict[TConn, float] = {}  # refused, draining until closed or the time given
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        super().init_process()  # runs the worker: the poller exists only from here on

    def run(self) -> None:
        """gthread's loop; when `alive` goes False (SIGTERM) the worker stops accepting and closes its idle
        kept-alive connections, but serves heads being read, queued bodies and running requests until they end
        (each within its read deadline) or gunicorn's graceful_timeout nears, then exits."""
        self.poller.register(self.wake_r, selectors.EVENT_READ, self.on_wake)
        for listener in self.sockets:
            listener.setblocking(False)
            self.poller.register(listener, selectors.EVENT_READ, partial(self.accept, listener.getsockname()))
        while self.alive:
            self.turn()
            if not self.is_parent_alive():
                break
        stop_at = time.monotonic() + max(0.0, self.cfg.graceful_timeout - 1.0)
        STOPPING.set()  # event streams end (their clients resume elsewhere); long-polls end within MAX_WAIT_S
        self.stop_accepting()
        while self.unfinished() and time.monotonic() < stop_at:
            self.turn()
        self.tpool.shutdown(False)
        self.poller.close()
        futures.wait(self.futures, timeout=max(0.0, stop_at - time.monotonic()))

    def unfinished(self) -> bool:
        return bool(self.heads or self.body_queue or self.futures or self.to_linger or self.lingering)

    def turn(self) -> None:
        """One turn of gthread's loop: events (or waiting for a thread when at worker_connections), finished
        requests, deadlines."""
        self.notify()
        if self.nr_conns < self.worker_connections:
            for key, _ in self.poller.select(1.0):
                key.data(key.fileobj)
            result = futures.wait(self.futures, timeout=0, return_when=futures.FIRST_COMPLETED)
        else:
            result = futures.wait(self.futures, timeout=1.0, return_when=futures.FIRST_COMPLETED)
        for done in result.done:
            self.futures.remove(done)
        self.murder_keepalived()

    def stop_accepting(self) -> None:
        for listener in self.sockets:
            with contextlib.suppress(KeyError, ValueError, OSError):
                self.poller.unregister(listener)
            listener.close()
        with self._lock:
            kept = list(self._keep)
        for conn in kept:  # a next head already on its way is served; idle connections are closed
            if self.has_bytes(conn):
                self.on_client_socket_readable(conn, conn.sock)
                continue
            with self._lock:
                try:
                    self._keep.remove(conn)
                except ValueError:  # murder_keepalived closed it meanwhile
                    continue
                with contextlib.suppress(KeyError, ValueError, OSError):
                    self.poller.unregister(conn.sock)
            self.nr_conns -= 1
            conn.close()

    @staticmethod
    def has_bytes(conn: TConn) -> bool:
        try:
            return bool(conn.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
        except OSError:
            return False

    def on_wake(self, fd: int) -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(fd, 4096)
        while self.to_linger:
            self.linger(self.to_linger.popleft())
        self.dispatch_waiting_bodies()

    def wake(self) -> None:
        with contextlib.suppress(BlockingIOError):  # the pipe is full: the loop wakes anyway
            os.write(self.wake_w, b"x")

    # Heads, in the main loop

    def accept(self, server: Any, listener: socket.socket) -> None:
        if self.cfg.is_ssl:
            return super().accept(server, listener)
        try:
            sock, client = listener.accept()
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        conn = TConn(self.cfg, sock, client, server)
        self.nr_conns += 1
        self.start_head(conn, leftover=b"", readable=False)

    def on_client_socket_readable(self, conn: TConn, client: socket.socket) -> None:
        """A kept-alive connection sends its next request: its head is read here too, on a new deadline."""
        if self.cfg.is_ssl or not conn.initialized:
            return super().on_client_socket_readable(conn, client)
        with self._lock:
            self.poller.unregister(client)
            try:
                self._keep.remove(conn)
            except ValueError:  # murder_keepalived closed it meanwhile
                return
        unreader = conn.parser.unreader
        leftover = unreader.buf.getvalue()  # pipelined bytes the last request's reads took in
        unreader.buf = io.BytesIO()
        self.start_head(conn, leftover, readable=True)

    def start_head(self, conn: TConn, leftover: bytes, readable: bool) -> None:
        conn.head = bytearray(leftover)
        conn.expired = False
        self.heads[conn] = time.monotonic() + self.read_timeout_s
        with self._lock:
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_head_bytes, conn))
        if readable or leftover:
            self.on_head_bytes(conn, conn.sock)

    def on_head_bytes(self, conn: TConn, client: socket.socket) -> None:
        try:
            data = conn.sock.recv(MAX_HEAD_BYTES)
        except (BlockingIOError, InterruptedError):
            data = None
        except OSError:
            self.drop_head(conn)
            return
        if data == b"":  # the client went away
            self.drop_head(conn)
            return
        searched_from = max(0, len(conn.head) - len(HEAD_END) + 1)
        conn.head += data or b""
        end = conn.head.find(HEAD_END, searched_from)
        if end < 0 and len(conn.head) <= MAX_HEAD_BYTES:
            return
        deadline = self.heads.pop(conn)
        with self._lock:
            self.poller.unregister(conn.sock)
        if end < 0 or end + len(HEAD_END) > MAX_HEAD_BYTES:
            self.refuse(conn, HEAD_TOO_LARGE)
            return
        conn.deadline = deadline
        conn.peer = str(conn.client[0]) if isinstance(conn.client, tuple) else str(conn.client)
        if body_follows(bytes(conn.head), end):
            self.body_queue.append(conn)
            self.dispatch_waiting_bodies()
        else:
            conn.body_slot = False
            self.to_thread(conn)

    def drop_head(self, conn: TConn) -> None:
        self.heads.pop(conn, None)
        with self._lock, contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(conn.sock)
        self.nr_conns -= 1
        conn.close()

    def dispatch_waiting_bodies(self) -> None:
        """Queued bodies go to threads in their order, but a client address with `slots_per_peer` bodies on
        threads already waits: one client opening many connections cannot keep every slot."""
        for conn in list(self.body_queue):
            if conn.deadline <= time.monotonic():
                self.body_queue.remove(conn)
                self.refuse(conn, TOO_SLOW)
                continue
            with self._lock:
                if self.body_readers >= self.body_slots:
                    return
                if self.peer_readers.get(conn.peer, 0) >= self.slots_per_peer:
                    continue
                self.body_readers += 1
                self.peer_readers[conn.peer] = self.peer_readers.get(conn.peer, 0) + 1
            self.body_queue.remove(conn)
            conn.body_slot = True
            self.to_thread(conn)

    def release_body_slot(self, conn: TConn) -> None:
        """On the thread, once the request is answered and its body read (or given up)."""
        conn.body_slot = False
        with self._lock:
            self.body_readers -= 1
            left = self.peer_readers.pop(conn.peer) - 1
            if left:
                self.peer_readers[conn.peer] = left
        self.wake()

    def to_thread(self, conn: TConn) -> None:
        """Hand a connection with a whole head to a thread: the parser reads the head from what the loop
        read, and the body from the socket, within the connection's deadline."""
        conn.init()
        conn.sock.settimeout(self.read_timeout_s)  # a client that does not read its answer: see handle_request
        conn.parser.unreader.unread(bytes(conn.head))
        conn.parser.unreader.sock = DeadlineSocket(conn.sock, conn.deadline, conn, self.read_timeout_s)
        conn.head = bytearray()
        fs = self.tpool.submit(self.handle, conn)
        self._wrap_future(fs, conn)

    # Refusals, deadlines

    def refuse(self, conn: TConn, answer: bytes) -> None:
        """Answer and close; what the client still sends is read and dropped for a moment first, so that
        the answer is not lost to a reset."""
        try:
            conn.sock.send(answer)
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.nr_conns -= 1
            conn.close()
            return
        self.linger(conn)

    def linger(self, conn: TConn) -> None:
        """In the loop: read and drop what an answered client still sends, for LINGER_S at most, then close."""
        with contextlib.suppress(OSError):
            conn.sock.setblocking(False)
            conn.sock.shutdown(socket.SHUT_WR)
        self.lingering[conn] = time.monotonic() + LINGER_S
        with self._lock:
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_linger_bytes, conn))

    def on_linger_bytes(self, conn: TConn, client: socket.socket) -> None:
        try:
            while conn.sock.recv(65536):
                pass
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            pass
        self.end_linger(conn)

    def end_linger(self, conn: TConn) -> None:
        if self.lingering.pop(conn, None) is None:
            return
        with self._lock, contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(conn.sock)
        self.nr_conns -= 1
        conn.close()

    def murder_keepalived(self) -> None:
        """gthread's idle kept-alive connections, then heads and queued bodies past their deadline (408),
        then refused connections done lingering. Runs on every turn of the main loop (at least each second)."""
        super().murder_keepalived()
        now = time.monotonic()
        for conn in [c for c, deadline in self.heads.items() if deadline <= now]:
            del self.heads[conn]
            with self._lock:
                self.poller.unregister(conn.sock)
            self.refuse(conn, TOO_SLOW)
        for conn in [c for c in self.body_queue if c.deadline <= now]:
            self.body_queue.remove(conn)
            self.refuse(conn, TOO_SLOW)
        for conn in [c for c, until in self.lingering.items() if until <= now]:
            self.end_linger(conn)

    # Requests, on a thread

    def handle(self, conn: TConn) -> tuple[bool, TConn]:
        try:
            keepalive, conn = super().handle(conn)
            if keepalive and not self.cfg.is_ssl:
                keepalive = self.rest_of_body_read(conn)
            return keepalive, conn
        finally:
            if getattr(conn, "body_slot", False):
                self.release_body_slot(conn)

    def finish_request(self, fs: Any) -> None:
        """gthread's, but a connection answered with its body unread goes back to the loop to linger."""
        conn = fs.conn
        if getattr(conn, "unread_body", False) and not fs.cancelled():
            self.to_linger.append(conn)
            self.wake()
            return
        super().finish_request(fs)

    def handle_request(self, req: Any, conn: TConn) -> bool:
        """A write that the client does not take within CLIENT_READ_TIMEOUT_S (`sendall`'s timeout is the
        budget of the whole call) closes the connection: a client that never reads cannot hold a thread."""
        conn.request = req
        try:
            return bool(super().handle_request(req, conn))
        except TimeoutError:
            self.log.info("Closing %s: it did not read its answer within %ss", conn.client, self.read_timeout_s)
            return False

    def rest_of_body_read(self, conn: TConn) -> bool:
        """Read what the app left of the body (gunicorn would, before the next request), so that the next
        head is read in the loop. A body of known length that the app did not read (a 401, a 413) is not
        waited for on a thread holding a body slot: the loop reads and drops it (`linger`), then closes."""
        if getattr(conn, "expired", False):
            return False
        body = conn.parser.mesg.body
        if isinstance(body.reader, LengthReader) and body.reader.length > 0:
            conn.unread_body = True
            return False
        try:
            while body.read(65536):
                pass
        except Exception:
            return False
        return True


__all__ = ["ClientTooSlow", "DeadlineSocket", "ReadDeadlineWorker", "body_follows"]
