"""Where the resource requests in deploy/kubernetes/services.toml come from: starts the six
services, each as its own process, against the local NATS and Postgres (and a real SMTP server,
aiosmtpd, for notification's mail when it is installed), and prints each one's resident memory and
CPU idle for 20 s, then what 100 complaints cost it on their way through the whole suite.

    python tests/deploy/measure.py                                 debug builds, as `make test`
    REDRESS_MEASURE_PROFILE=release python tests/deploy/measure.py release builds, as images ship

Not part of deploy-check: figures, not a test. The CPU per complaint counts everything a
service does for it: intake validates and seals, classification classifies, case-coordination
opens and routes the case, notification renders and mails the receipt and assignment notices
(after GetContact from intake), analytics counts every event, compliance-audit appends every
event to its log. Idle CPU over the same time is subtracted.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nats

from harness import ROOT, Database, Service, binary, workdir

TICKS = os.sysconf("SC_CLK_TCK")
PROFILE = os.environ.get("REDRESS_MEASURE_PROFILE", "debug")
COMPLAINTS = 100
SMTP_SCRIPT = ROOT / "services/notification/tests/support/smtp_server.py"


def sample(pid: int) -> tuple[int, int]:
    """(RSS in KiB, CPU ticks used so far)."""
    rss = next(int(l.split()[1]) for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS:"))
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return rss, int(fields[11]) + int(fields[12])


def window(services: list[Service], seconds: float) -> dict[str, tuple[float, float]]:
    """Each service's (RSS MiB, mCPU) over `seconds`."""
    start = {s.name: sample(s.proc.pid) for s in services}
    t0 = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - t0
    out = {}
    for s in services:
        rss, ticks = sample(s.proc.pid)
        out[s.name] = (rss / 1024, (ticks - start[s.name][1]) / TICKS / elapsed * 1000)
    return out


def settle(services: list[Service], idle: dict[str, tuple[float, float]], deadline: float) -> None:
    """Returns once no service has used more than twice its idle CPU for three seconds in a row:
    the complaints' last events have been handled everywhere."""
    quiet = 0
    last = {s.name: sample(s.proc.pid)[1] for s in services}
    while quiet < 3 and time.monotonic() < deadline:
        time.sleep(1)
        now = {s.name: sample(s.proc.pid)[1] for s in services}
        busy = any((now[n] - last[n]) / TICKS * 1000 > max(2 * idle[n][1], 20) for n in now)
        quiet = 0 if busy else quiet + 1
        last = now


def smtp_server(work: Path) -> tuple[subprocess.Popen | None, int, Path]:
    """aiosmtpd on a free port with a Maildir, or None when this Python lacks it."""
    from harness import free_port
    maildir = work / "maildir"
    try:
        import aiosmtpd  # noqa: F401
    except ImportError:
        print("aiosmtpd is not installed (pip install aiosmtpd): notification runs without e-mail")
        return None, 0, maildir
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(SMTP_SCRIPT), str(port), str(maildir)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    if proc.stdout is None or proc.stdout.readline().strip() != "ready":
        raise RuntimeError("aiosmtpd did not start")
    return proc, port, maildir


async def submit(url: str, namespace: str) -> float:
    nc = await nats.connect(url)
    t0 = time.monotonic()
    for i in range(COMPLAINTS):
        body = {"channel": "CHANNEL_WEB", "channelRef": f"m-{i}",
                "consumer": {"phone": f"1390000{i:04d}", "email": f"consumer{i}@example.com",
                             "preferredContact": "CONTACT_METHOD_EMAIL"},
                "description": "The app charged my card twice for one repayment and nobody answers."}
        await nc.request(f"{namespace}.redress.intake.v1.submit.web", json.dumps(body).encode(), timeout=30,
                         headers={"Content-Type": "application/json", "Nats-Msg-Id": f"web:m-{i}"})
    await nc.close()
    return time.monotonic() - t0


async def main() -> int:
    url = os.environ.get("REDRESS_NATS_URL", "nats://127.0.0.1:4222")
    namespace = f"measure_{secrets.token_hex(3)}"
    work = workdir("redress-measure-")
    db = Database()
    services: list[Service] = []
    smtp, smtp_port, maildir = smtp_server(work)
    try:
        common = {"REDRESS_BUS_NAMESPACE": namespace}
        for name in ("intake", "classification", "case-coordination", "analytics"):
            services.append(Service(work, name, url, None, db, common, PROFILE))
        (work / "service").mkdir()
        shutil.copy(ROOT / "deploy/local/dev-keys/dev.key.pem", work / "service/dev.pem")
        notification = {**common, "REDRESS_INTAKE_URL": f"http://{services[0].grpc}",
                        "REDRESS_SERVICE_KEY": str(work / "service/dev.pem")}
        if smtp is not None:
            notification["REDRESS_SMTP_URL"] = f"smtp://127.0.0.1:{smtp_port}"
        services.append(Service(work, "notification", url, None, db, notification, PROFILE))
        audit_key = work / "audit-signing.key"
        subprocess.run([str(binary("compliance-audit", PROFILE)), "keygen", "audit.measure.local", str(audit_key)],
                       check=True, stdout=subprocess.DEVNULL)
        services.append(Service(work, "compliance-audit", url, None, db,
                                {**common, "REDRESS_AUDIT_SIGNING_KEY_FILE": str(audit_key)}, PROFILE))
        for s in services:
            await s.ready()
        idle = window(services, 20)
        before = {s.name: sample(s.proc.pid)[1] for s in services}
        t0 = time.monotonic()
        burst = await submit(url, namespace)
        settle(services, idle, time.monotonic() + 120)
        elapsed = time.monotonic() - t0
        after = {s.name: sample(s.proc.pid) for s in services}
        mails = len(list((maildir / "new").glob("*"))) if smtp is not None else 0
        print(f"{PROFILE} builds; {COMPLAINTS} complaints submitted in {burst:.1f} s (one request at a "
              f"time), every service quiet again after {elapsed:.1f} s; {mails} e-mails received")
        print("service              idle RSS MiB  idle mCPU  RSS after MiB  CPU ms per complaint")
        for s in services:
            used = (after[s.name][1] - before[s.name]) / TICKS - idle[s.name][1] / 1000 * elapsed
            print(f"{s.name:20} {idle[s.name][0]:12.1f}  {idle[s.name][1]:9.1f}  {after[s.name][0] / 1024:13.1f}"
                  f"  {max(used, 0) * 1000 / COMPLAINTS:20.2f}")
    finally:
        for s in services:
            s.stop()
        if smtp is not None:
            smtp.kill()
        db.drop()
        # The namespace's streams on the shared server go too (tests/python/cleanup.py).
        subprocess.run([sys.executable, str(ROOT / "tests/python/cleanup.py"), url, namespace], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
