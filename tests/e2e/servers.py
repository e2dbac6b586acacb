"""A real Ray head with token authentication and a real MLflow tracking server, both on 127.0.0.1.

Each runs in its own process group and is stopped by signalling that group, so
stopping them never touches another Ray on the machine (``ray stop`` would).
"""
from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import requests

VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float, ok=(200, 401)) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(url, timeout=2).status_code in ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout} s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen, grace: float = 20.0) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(grace)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(10)


def token_env(token_path: Path | None) -> dict:
    """The environment a client needs to talk to the authenticated head."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["RAY_AUTH_MODE"] = "token"
    if token_path is not None:
        env["RAY_AUTH_TOKEN_PATH"] = str(token_path)
    return env


@contextmanager
def ray_head(workdir: Path, num_cpus: int = 4):
    """Yield ``(dashboard_url, token_path)`` of a token-authenticated Ray head on 127.0.0.1."""
    workdir.mkdir(parents=True, exist_ok=True)
    token_path = workdir / "auth_token"
    token_path.write_text(secrets.token_hex(32))
    token_path.chmod(0o600)
    gcs, dash = free_port(), free_port()
    log = workdir / "ray-head.log"
    # Ray's temp dir holds unix socket paths, which must stay under ~107 bytes.
    temp_dir = Path("/tmp") / f"sr-{secrets.token_hex(3)}"
    cmd = [str(VENV_BIN / "ray"), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
           f"--port={gcs}", "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}",
           f"--num-cpus={num_cpus}", f"--temp-dir={temp_dir}", "--disable-usage-stats",
           f"--ray-client-server-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}",
           f"--min-worker-port={20000 + gcs % 10000}", f"--max-worker-port={20000 + gcs % 10000 + 200}"]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=token_env(token_path),
                                start_new_session=True, cwd=workdir)
    url = f"http://127.0.0.1:{dash}"
    try:
        _wait_http(f"{url}/api/version", proc, log, timeout=120, ok=(200, 401))
        # The job agent answers after the dashboard: wait for the jobs API too.
        headers = {"Authorization": f"Bearer {token_path.read_text().strip()}"}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{url}/api/jobs/", headers=headers, timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.5)
        yield url, token_path
    finally:
        _stop(proc)


@contextmanager
def mlflow_server(workdir: Path):
    """Yield the URI of an MLflow tracking server on 127.0.0.1 (SQLite store, proxied artifacts)."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = workdir / "mlflow-server.log"
    cmd = [str(VENV_BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
           "--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}",
           "--artifacts-destination", str(workdir / "artifacts"), "--workers", "1"]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                cwd=workdir, env={**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"})
    uri = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{uri}/health", proc, log, timeout=120, ok=(200,))
        yield uri
    finally:
        _stop(proc)
