#!/usr/bin/env python3
"""Start, watch and stop meshguard's demo stack: the demo LLM upstream, the
sidecar and Envoy with the meshguard filter, all on loopback.

Used by `scripts/run` (fixed ports, overridable by environment) and by the
end-to-end tests (free ports). Every process is started in its own session
and stopped by process group, so nothing outlives the stack.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
WASM_PATH = ROOT / "target" / "wasm32-wasip1" / "wasm" / "meshguard_filter.wasm"
SIDECAR_BIN = ROOT / "target" / "release" / "meshguard-sidecar"
ENVOY_TEMPLATE = ROOT / "envoy" / "demo.yaml"
PLUGIN_CONFIG = ROOT / "envoy" / "meshguard.json"
UPSTREAM_SCRIPT = ROOT / "scripts" / "demo_upstream.py"


def envoy_binary():
    candidate = VENV_BIN / "envoy"
    return str(candidate) if candidate.exists() else "envoy"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Ports:
    listen: int = 10000
    admin: int = 9901
    sidecar: int = 8081
    upstream: int = 8000
    # A second demo upstream standing in for a self-hosted model
    # (envoy/sensitive-routing.yaml).
    self_hosted: int = 8001

    @classmethod
    def from_env(cls):
        return cls(
            listen=int(os.environ.get("MESHGUARD_LISTEN_PORT", 10000)),
            admin=int(os.environ.get("MESHGUARD_ADMIN_PORT", 9901)),
            sidecar=int(os.environ.get("MESHGUARD_SIDECAR_PORT", 8081)),
            upstream=int(os.environ.get("MESHGUARD_UPSTREAM_PORT", 8000)),
        )

    @classmethod
    def free(cls):
        return cls(free_port(), free_port(), free_port(), free_port(), free_port())


DEMO_JWKS = ROOT / "envoy" / "demo-keys" / "public.jwks.json"


def render_envoy_config(ports, plugin_config_text, access_log, wasm_path=WASM_PATH, template=ENVOY_TEMPLATE,
                        pre_filters=None, bare=False):
    """Fills in the template's double-brace values. The plugin configuration goes in as
    a JSON string literal, which is also a valid YAML double-quoted scalar."""
    text = Path(template).read_text()
    if bare:
        # The same Envoy without meshguard, for same-run comparisons.
        begin, end = text.index("# meshguard-filter-begin"), text.index("# meshguard-filter-end")
        text = text[:text.rindex("\n", 0, begin) + 1] + text[text.index("\n", end) + 1:]
    values = {
        "LISTEN_PORT": str(ports.listen),
        "ADMIN_PORT": str(ports.admin),
        "SIDECAR_PORT": str(ports.sidecar),
        "UPSTREAM_PORT": str(ports.upstream),
        "SELF_HOSTED_PORT": str(ports.self_hosted),
        "WASM_PATH": str(wasm_path),
        "ACCESS_LOG": str(access_log),
        "PLUGIN_CONFIG": json.dumps(plugin_config_text),
        "PRE_FILTERS": Path(pre_filters).read_text() if pre_filters else "",
    }
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    # Values that may appear inside the inserted filters.
    text = text.replace("{{DEMO_JWKS}}", json.dumps(DEMO_JWKS.read_text()))
    if "{{" in text:
        raise ValueError("unrendered placeholder left in " + str(template))
    return text


def http_get(url, timeout=1.0):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError):
        return None, ""


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log_path: Path

    def alive(self):
        return self.popen.poll() is None

    def stop(self, grace=5.0):
        if not self.alive():
            return
        try:
            os.killpg(self.popen.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.popen.wait(timeout=grace)


@dataclass
class Stack:
    ports: Ports
    run_dir: Path
    plugin_config_text: str = ""
    sidecar_plugin_config: Path = PLUGIN_CONFIG
    envoy_concurrency: int = 1
    pre_filters: Path = None
    bare: bool = False
    template: Path = ENVOY_TEMPLATE
    wasm_path: Path = WASM_PATH
    processes: list = field(default_factory=list)

    def __post_init__(self):
        self.run_dir = Path(self.run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if not self.plugin_config_text:
            self.plugin_config_text = PLUGIN_CONFIG.read_text()

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.ports.listen}"

    @property
    def access_log(self):
        return self.run_dir / "access.log"

    @property
    def envoy_log(self):
        return self.run_dir / "envoy.log"

    def _spawn(self, name, argv, log_name):
        log_path = self.run_dir / log_name
        log_file = open(log_path, "ab")
        popen = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True, cwd=ROOT)
        log_file.close()
        process = Process(name, popen, log_path)
        self.processes.append(process)
        return process

    def start_upstream(self, name="upstream"):
        port = self.ports.self_hosted if name == "self-hosted" else self.ports.upstream
        proc = self._spawn(name, [sys.executable, str(UPSTREAM_SCRIPT), "--port", str(port)], f"{name}.log")
        self._wait(proc, lambda: http_get(f"http://127.0.0.1:{port}/healthz")[0] == 200)
        return proc

    def start_sidecar(self, extra_args=()):
        proc = self._spawn("sidecar", [str(SIDECAR_BIN), "--listen", f"127.0.0.1:{self.ports.sidecar}",
                                       "--plugin-config", str(self.sidecar_plugin_config), *extra_args], "sidecar.log")
        self._wait(proc, lambda: http_get(f"http://127.0.0.1:{self.ports.sidecar}/healthz")[0] == 200)
        return proc

    def envoy_config_path(self):
        path = self.run_dir / "envoy.yaml"
        path.write_text(render_envoy_config(self.ports, self.plugin_config_text, self.access_log,
                                            wasm_path=self.wasm_path, template=self.template,
                                            pre_filters=self.pre_filters, bare=self.bare))
        return path

    def start_envoy(self, wait=True):
        config = self.envoy_config_path()
        argv = [envoy_binary(), "-c", str(config), "--concurrency", str(self.envoy_concurrency),
                "--disable-hot-restart", "--file-flush-interval-msec", "100", "--log-path", str(self.envoy_log), "--log-level", "info"]
        proc = self._spawn("envoy", argv, "envoy.stdout.log")
        if wait:
            self._wait(proc, lambda: http_get(f"http://127.0.0.1:{self.ports.admin}/ready")[1].strip() == "LIVE",
                       timeout=60)
        return proc

    def start_all(self):
        self.start_upstream()
        self.start_sidecar()
        self.start_envoy()
        return self

    def _wait(self, proc, ready, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}; see {proc.log_path}:\n"
                                   + tail(proc.log_path) + ("\n" + tail(self.envoy_log) if proc.name == "envoy" else ""))
            if ready():
                return
            time.sleep(0.05)
        raise RuntimeError(f"{proc.name} not ready after {timeout}s; see {proc.log_path}")

    def stop(self):
        for proc in reversed(self.processes):
            proc.stop()
        self.processes.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def tail(path, lines=40):
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def run_demo():
    ports = Ports.from_env()
    run_dir = ROOT / ".run"
    for name in ("envoy.log", "access.log", "sidecar.log", "upstream.log", "envoy.stdout.log"):
        (run_dir / name).unlink(missing_ok=True)
    plugin_config = Path(os.environ.get("MESHGUARD_PLUGIN_CONFIG", PLUGIN_CONFIG))
    pre_filters = os.environ.get("MESHGUARD_PRE_FILTERS")
    stack = Stack(ports, run_dir, plugin_config_text=plugin_config.read_text(), sidecar_plugin_config=plugin_config,
                  envoy_concurrency=int(os.environ.get("MESHGUARD_ENVOY_CONCURRENCY", 2)),
                  pre_filters=ROOT / pre_filters if pre_filters else None)
    stopping = False

    def on_signal(signum, _frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        stack.start_all()
        url = stack.base_url
        print(f"""
meshguard demo stack is up
  Envoy + meshguard  {url}   (admin http://127.0.0.1:{ports.admin})
  sidecar            http://127.0.0.1:{ports.sidecar}
  demo LLM upstream  http://127.0.0.1:{ports.upstream}
  logs               {run_dir}/envoy.log  access.log  sidecar.log  upstream.log

Try it in another shell (the demo upstream answers with your last message):

  TOKEN=$(scripts/token alice)        # a demo JWT; requests without one get 401

  curl -s {url}/v1/chat/completions -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \\
    -d '{{"model":"demo","messages":[{{"role":"user","content":"Hello through meshguard"}}]}}'

  curl -sN {url}/v1/chat/completions -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \\
    -d '{{"model":"demo","stream":true,"messages":[{{"role":"user","content":"stream me"}}]}}'

  tail -n1 {run_dir}/access.log        # the decision record of the last request

Ctrl-C stops everything.
""", flush=True)
        while not stopping:
            for proc in stack.processes:
                if not proc.alive():
                    print(f"{proc.name} exited ({proc.popen.returncode}); see {proc.log_path}", flush=True)
                    stopping = True
            time.sleep(0.5)
    except RuntimeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        print("stopping…", flush=True)
        stack.stop()
    return 0


def main(argv):
    if len(argv) >= 2 and argv[1] == "run":
        return run_demo()
    if len(argv) >= 2 and argv[1] == "render":
        # render [PLUGIN_CONFIG]: print the demo Envoy config with default ports.
        plugin = Path(argv[2]) if len(argv) > 2 else PLUGIN_CONFIG
        sys.stdout.write(render_envoy_config(Ports(), plugin.read_text(), ROOT / ".run" / "access.log"))
        return 0
    print("usage: stack.py run | render [PLUGIN_CONFIG]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
