"""A small LSP client over stdio, for the end-to-end tests and the latency benchmark.

It starts `python -m archdsl lsp` as a process and speaks JSON-RPC to it with LSP's
`Content-Length` framing: requests wait for their response, notifications from the server
(`textDocument/publishDiagnostics`, log messages) are collected as they arrive by a reader thread.
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


class ServerError(Exception):
    pass


class Client:
    def __init__(self, *, encodings: list[str] | None = None, root: Path = ROOT) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "archdsl", "lsp"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=root,
            env=env,
        )
        self.ids = itertools.count(1)
        self.responses: dict[int, Any] = {}
        self.notifications: queue.Queue[dict[str, Any]] = queue.Queue()
        self.diagnostics: dict[str, list[dict[str, Any]]] = {}
        #: Every publishDiagnostics, in order: (arrival time, params).
        self.published: list[tuple[float, dict[str, Any]]] = []
        self.condition = threading.Condition()
        self.stderr: list[bytes] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        capabilities: dict[str, Any] = {"textDocument": {"hover": {"contentFormat": ["markdown"]}}}
        if encodings:
            capabilities["general"] = {"positionEncodings": encodings}
        self.initialized = self.request(
            "initialize", {"processId": os.getpid(), "rootUri": root.as_uri(), "capabilities": capabilities}
        )
        self.notify("initialized", {})

    # --- the wire ------------------------------------------------------------------------------

    def _send(self, message: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode("utf-8")
        assert self.process.stdin is not None
        self.process.stdin.write(f"Content-Length: {len(body)}\r\n\r\n".encode("ascii") + body)
        self.process.stdin.flush()

    def _read(self) -> None:
        stream = self.process.stdout
        assert stream is not None
        while True:
            length = None
            while True:
                line = stream.readline()
                if not line:
                    return
                if line in (b"\r\n", b"\n"):
                    break
                name, _, value = line.decode("ascii").partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            if length is None:
                continue
            message = json.loads(stream.read(length))
            arrived = time.perf_counter()
            with self.condition:
                if "id" in message and "method" not in message:
                    self.responses[message["id"]] = message
                elif message.get("method") == "textDocument/publishDiagnostics":
                    params = message["params"]
                    self.diagnostics[params["uri"]] = params["diagnostics"]
                    self.published.append((arrived, params))
                elif "id" in message:  # a request from the server (registrations): accept it
                    self._send({"id": message["id"], "result": None})
                else:
                    self.notifications.put(message)
                self.condition.notify_all()

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr.append(line)

    # --- requests ------------------------------------------------------------------------------

    def request(self, method: str, params: Any, timeout: float = 30.0) -> Any:
        number = next(self.ids)
        self._send({"id": number, "method": method, "params": params})
        deadline = time.monotonic() + timeout
        with self.condition:
            while number not in self.responses:
                left = deadline - time.monotonic()
                if left <= 0 or self.process.poll() is not None:
                    raise ServerError(
                        f"no answer to {method}; stderr: {b''.join(self.stderr).decode()[-2000:]}"
                    )
                self.condition.wait(left)
            response = self.responses.pop(number)
        if "error" in response:
            raise ServerError(f"{method}: {response['error']}")
        return response.get("result")

    def notify(self, method: str, params: Any) -> None:
        self._send({"method": method, "params": params})

    def wait_for_diagnostics(self, uri: str, version: int | None = None, timeout: float = 30.0) -> list[Any]:
        """The diagnostics published for `uri` (for that document version, when given)."""
        deadline = time.monotonic() + timeout
        with self.condition:
            while True:
                for _, params in reversed(self.published):
                    if params["uri"] == uri and (version is None or params.get("version") == version):
                        return list(params["diagnostics"])
                left = deadline - time.monotonic()
                if left <= 0 or self.process.poll() is not None:
                    raise ServerError(f"no diagnostics for {uri} version {version}")
                self.condition.wait(left)

    def wait_until(self, predicate: Any, timeout: float = 30.0) -> None:
        """Waits until `predicate()` holds (it reads `diagnostics`, `published`)."""
        deadline = time.monotonic() + timeout
        with self.condition:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0 or self.process.poll() is not None:
                    raise ServerError("the awaited messages did not come")
                self.condition.wait(left)

    # --- documents -----------------------------------------------------------------------------

    def open(self, path: Path, text: str | None = None, version: int = 1) -> str:
        uri = path.resolve().as_uri()
        text = path.read_text(encoding="utf-8") if text is None else text
        self.notify(
            "textDocument/didOpen",
            {"textDocument": {"uri": uri, "languageId": "arch", "version": version, "text": text}},
        )
        return uri

    def change(
        self, uri: str, version: int, text: str | None = None, edit: dict[str, Any] | None = None
    ) -> None:
        """A full-text change, or one incremental edit ({"range": …, "text": …})."""
        change = edit if edit is not None else {"text": text}
        self.notify(
            "textDocument/didChange",
            {"textDocument": {"uri": uri, "version": version}, "contentChanges": [change]},
        )

    def close(self) -> int:
        try:
            self.request("shutdown", None, timeout=10)
            self.notify("exit", None)
            return self.process.wait(timeout=10)
        except Exception:
            self.process.kill()
            self.process.wait()
            raise
        finally:
            for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
                if stream is not None:
                    stream.close()


def position(line: int, character: int) -> dict[str, int]:
    return {"line": line, "character": character}
