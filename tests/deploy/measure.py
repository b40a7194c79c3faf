"""Where the resource requests in deploy/kubernetes/services.toml come from: starts intake,
classification and case-coordination (debug builds, as `make test` builds them) against the local
NATS and Postgres, and prints each one's resident memory and CPU idle for 20 s, then after 100
complaints went through the pipeline.

    python tests/deploy/measure.py        (not part of deploy-check: figures, not a test)
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
import time

import nats

from harness import ROOT, Database, Service, workdir

TICKS = os.sysconf("SC_CLK_TCK")


def sample(pid: int) -> tuple[int, int]:
    """(RSS in KiB, CPU ticks used so far)."""
    rss = next(int(l.split()[1]) for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS:"))
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return rss, int(fields[11]) + int(fields[12])


def window(services: list[Service], seconds: float) -> dict[str, tuple[float, float]]:
    start = {s.name: sample(s.proc.pid) for s in services}
    t0 = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - t0
    out = {}
    for s in services:
        rss, ticks = sample(s.proc.pid)
        out[s.name] = (rss / 1024, (ticks - start[s.name][1]) / TICKS / elapsed * 1000)
    return out


async def main() -> int:
    url = os.environ.get("REDRESS_NATS_URL", "nats://127.0.0.1:4222")
    namespace = f"measure_{secrets.token_hex(3)}"
    work = workdir("redress-measure-")
    db = Database()
    services = []
    try:
        for name in ("intake", "classification", "case-coordination"):
            s = Service(work, name, url, None, db, {"REDRESS_BUS_NAMESPACE": namespace})
            services.append(s)
        for s in services:
            await s.ready()
        idle = window(services, 20)
        nc = await nats.connect(url)
        before = {s.name: sample(s.proc.pid)[1] for s in services}
        t0 = time.monotonic()
        for i in range(100):
            body = {"channel": "CHANNEL_WEB", "channelRef": f"m-{i}", "consumer": {"phone": f"1390000{i:04d}"},
                    "description": "The app charged my card twice for one repayment and nobody answers."}
            await nc.request(f"{namespace}.redress.intake.v1.submit.web", json.dumps(body).encode(), timeout=30,
                             headers={"Content-Type": "application/json", "Nats-Msg-Id": f"web:m-{i}"})
        await nc.close()
        after = window(services, 5)  # also lets the last events finish
        burst = time.monotonic() - t0
        used = {s.name: (sample(s.proc.pid)[1] - before[s.name]) / TICKS for s in services}
        print(f"100 complaints in {burst:.1f} s (one request at a time)")
        print("service              idle RSS MiB  idle mCPU  RSS after MiB  CPU ms per complaint")
        for s in services:
            print(f"{s.name:20} {idle[s.name][0]:12.1f}  {idle[s.name][1]:9.1f}  {after[s.name][0]:13.1f}"
                  f"  {used[s.name] * 1000 / 100:20.1f}")
    finally:
        for s in services:
            s.stop()
        db.drop()
        # The namespace's streams on the shared server go too (tests/python/cleanup.py).
        import subprocess
        subprocess.run([sys.executable, str(ROOT / "tests/python/cleanup.py"), url, namespace], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
