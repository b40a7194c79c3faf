"""Real processes for the deploy tests: nats-server with the generated accounts, the Redress
service binaries with their own NATS users, a database of their own. No mocks."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "deploy/nats"))
import generate  # noqa: E402  (deploy/nats/generate.py: users and password variables)

# The development keys the e2e harness uses too (services/intake/src/vault.rs `dev`).
INTAKE_DEV = {
    "REDRESS_INTAKE_KEYS": "dev1:ZGV2ZWxvcG1lbnQta2V5LW5ldmVyLWluLXByb2R1Y3Q=",
    "REDRESS_INTAKE_ACTIVE_KEY": "dev1",
    "REDRESS_INTAKE_PSEUDONYM_KEY": "ZGV2ZWxvcG1lbnQtcHNldWRvbnltLWtleS1ub3QtcHJvZHVjdGlvbg==",
}
WAIT = 90.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bus() -> dict:
    return tomllib.loads(generate.DATA.read_text())


def passwords() -> dict[str, str]:
    """A fresh random password for every user of bus.toml: a letter, then letters and digits —
    nats-server parses a `$VAR` value as a config value, so `1…` would be read as a number."""
    return {u["user"]: "p" + secrets.token_hex(16) for u in generate.users(bus())}


def check(results: list, name: str, ok: bool, detail: str = "") -> None:
    print(("ok    " if ok else "FAIL  ") + name + (f": {detail}" if detail and not ok else ""), flush=True)
    results.append(ok)


async def eventually(what: str, check_fn, timeout: float = WAIT):
    """Polls `check_fn` (async, returns a value or None) until it gives a value or time is up."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check_fn()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.2)


class Nats:
    """One nats-server process with the generated accounts (and cluster settings if given)."""

    def __init__(self, workdir: Path, name: str, pw: dict[str, str], cluster: str = "", port: int = 0):
        self.name, self.pw, self.cluster = name, pw, cluster
        self.port = port or free_port()
        self.dir = workdir / name
        self.dir.mkdir(parents=True, exist_ok=True)
        shutil.copy(generate.OUT_LOCAL, self.dir / "accounts.conf")
        self.conf = self.dir / "nats.conf"
        self.conf.write_text(
            f'server_name: "{name}"\nport: {self.port}\nhost: "127.0.0.1"\n'
            f'jetstream {{ store_dir: "{self.dir / "js"}" }}\n{cluster}\ninclude "accounts.conf"\n'
        )
        self.proc: subprocess.Popen | None = None
        self.log = self.dir / "server.log"

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = dict(os.environ)
        env.update({generate.password_variable(u): p for u, p in self.pw.items()})
        server = os.environ.get("REDRESS_NATS_SERVER", "nats-server")
        stderr = open(self.dir / "stderr.log", "a")
        self.proc = subprocess.Popen([server, "-c", str(self.conf), "-l", str(self.log)], env=env,
                                     stdout=stderr, stderr=stderr)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    logs = [p.read_text()[-2000:] for p in (self.dir / "stderr.log", self.log) if p.exists()]
                    raise RuntimeError(f"nats-server {self.name} exited: {' '.join(logs)}")
                time.sleep(0.1)
        raise RuntimeError(f"nats-server {self.name} did not listen on {self.port}")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def violations(self) -> str:
        return "\n".join(l for l in self.log.read_text().splitlines() if "Violation" in l) if self.log.exists() else ""


def psql() -> str:
    """psql as deploy/local/ensure-deps.sh finds it: on PATH, or Debian's versioned directory."""
    found = shutil.which("psql") or next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/psql"),
                                                     reverse=True)), None)
    if not found:
        raise RuntimeError("the deploy tests need psql (Debian: apt install postgresql-client)")
    return str(found)


class Database:
    """A database of the test's own on the local Postgres, dropped at the end."""

    def __init__(self) -> None:
        self.admin = os.environ.get("REDRESS_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/redress")
        self.name = f"redress_deploy_{os.getpid()}_{secrets.token_hex(3)}"
        self.url = self.admin.rsplit("/", 1)[0] + "/" + self.name
        subprocess.run([psql(), "-q", self.admin, "-c", f"CREATE DATABASE {self.name}"], check=True,
                       stdout=subprocess.DEVNULL)

    def drop(self) -> None:
        subprocess.run([psql(), "-q", self.admin, "-c", f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def binary(name: str, profile: str = "debug") -> Path:
    """A Redress service binary of the build `make test` (or `make bench`) made."""
    return Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / profile / f"redress-{name}"


class Service:
    """A Redress service binary as its own process, with its own NATS user."""

    def __init__(self, workdir: Path, name: str, nats_url: str, password: str | None, db: Database,
                 extra: dict[str, str] | None = None, profile: str = "debug"):
        self.name = name
        self.http = free_port()
        self.grpc = f"127.0.0.1:{free_port()}"
        self.log_path = workdir / f"{name}.log"
        env = dict(os.environ)
        env.update({
            "REDRESS_NATS_URL": nats_url,
            "REDRESS_DATABASE_URL": db.url,
            "REDRESS_BUS_NAMESPACE": "",
            "REDRESS_GRPC_ADDR": self.grpc,
            "REDRESS_HTTP_ADDR": f"127.0.0.1:{self.http}",
            "REDRESS_JWT_PUBLIC_KEYS": str(ROOT / "deploy/local/dev-keys/dev.pem"),
            "REDRESS_LOG_FORMAT": "json",
            "RUST_LOG": "info",
            **INTAKE_DEV,
            **(extra or {}),
        })
        if password is not None:  # None: a server without users (tests/deploy/measure.py)
            env.update({"REDRESS_NATS_USER": name, "REDRESS_NATS_PASSWORD": password})
        self.proc = subprocess.Popen([str(binary(name, profile))], env=env, stdout=open(self.log_path, "w"),
                                     stderr=subprocess.STDOUT)

    async def ready(self) -> None:
        async def probe():
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.http}/readyz", timeout=1) as r:
                    return True if r.status == 200 else None
            except OSError:
                return None
        await eventually(f"{self.name} /readyz", probe)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def workdir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))
