"""Network faults between the app and PostgreSQL, made in userland: a server that accepts connections
and never says a word, and a forwarding proxy that can be told to go silent (it stops moving bytes
both ways and keeps every socket open, so the kernel still acknowledges what the app sends)."""

from __future__ import annotations

import contextlib
import select
import socket
import threading


class SilentServer:
    """Listens on 127.0.0.1, accepts every connection, reads nothing and answers nothing."""

    def __init__(self):
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._held: list[socket.socket] = []
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        self._listener.settimeout(0.1)
        while not self._closing.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._held.append(conn)

    def close(self):
        self._closing.set()
        self._thread.join(5)
        for sock in (*self._held, self._listener):
            with contextlib.suppress(OSError):
                sock.close()


class SilenceableProxy:
    """Forwards TCP from ``listen_host`` (any free port) to ``target``; :meth:`go_silent` stops all
    forwarding at once (new connections are accepted and then left hanging too), :meth:`resume`
    starts it again."""

    def __init__(self, target: tuple[str, int], listen_host: str = "127.0.0.1", port: int = 0):
        self.target = target
        self._listener = socket.create_server((listen_host, port))
        self.host, self.port = listen_host, self._listener.getsockname()[1]
        self._silent = threading.Event()
        self._closing = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def go_silent(self):
        self._silent.set()

    def resume(self):
        self._silent.clear()

    def _accept(self):
        self._listener.settimeout(0.1)
        while not self._closing.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                thread = threading.Thread(target=self._pump, args=(source, sink), daemon=True)
                thread.start()
                self._threads.append(thread)

    def _pump(self, source: socket.socket, sink: socket.socket):
        try:
            while not self._closing.is_set():
                if self._silent.is_set():
                    self._closing.wait(0.05)  # read nothing: bytes stay in the kernel's buffers
                    continue
                readable, _, _ = select.select([source], [], [], 0.1)
                if not readable or self._silent.is_set():
                    continue
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self):
        self._closing.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        for thread in self._threads:
            thread.join(5)
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()
