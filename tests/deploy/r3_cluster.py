"""A real three-server JetStream cluster with the Kubernetes component's settings
(deploy/kubernetes/components/nats/nats.conf: cluster name, routes to every peer, lame duck,
the generated accounts) and the production TLS (components/tls: clients over TLS, routes over
mutual TLS), with a CA made here by openssl the way cert-manager lays out its Secrets
(ca.crt, tls.crt, tls.key), on 127.0.0.1 ports. The services run against it with R3 streams
(REDRESS_STREAM_REPLICAS=3) and their own users; one server is killed while complaints
arrive and started again; every accepted complaint still opens exactly one case, and the
restarted server's replica of each stream catches up with the others.

    python tests/deploy/r3_cluster.py      (needs nats-server, Postgres, the debug binaries)
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import subprocess
import sys
import urllib.request

import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from harness import ROOT, Database, Nats, Service, bus, check, eventually, free_port, passwords, workdir

COMPONENT = ROOT / "deploy/kubernetes/components/nats/nats.conf"
TLS = ROOT / "deploy/kubernetes/components/tls"


def make_ca(work) -> None:
    """A CA and one certificate for 127.0.0.1 (server and client auth, as the component's)."""
    def run(*args):
        subprocess.run(["openssl", *args], cwd=work, check=True, capture_output=True)
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
        "-subj", "/CN=redress-test-ca", "-keyout", "ca.key", "-out", "ca.crt")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=nats",
        "-keyout", "tls.key", "-out", "tls.csr")
    (work / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                                  "extendedKeyUsage=serverAuth,clientAuth\n")
    run("x509", "-req", "-in", "tls.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "1",
        "-extfile", "ext.cnf", "-out", "tls.crt")
TEXTS = [
    "A debt collector calls me every day about a debt I do not owe and threatened my family.",
    "My credit report shows a late payment on an account I paid on time; the bureau will not fix it.",
    "The app deducted a fee twice from my card for one loan repayment and support does not answer.",
]


def cluster_settings(ports: list[tuple[int, int, int]], me: int) -> str:
    """The component's nats.conf for server `me`, with 127.0.0.1 ports instead of pod names."""
    text = COMPONENT.read_text()
    port, cluster, http = ports[me]
    routes = "\n".join(f"    nats://127.0.0.1:{c}" for _, c, _ in ports)
    text = re.sub(r"routes: \[.*?\]", f"routes: [\n{routes}\n  ]", text, flags=re.S)
    text = text.replace("listen: 0.0.0.0:4222", f"listen: 127.0.0.1:{port}")
    text = text.replace("listen: 0.0.0.0:6222", f"listen: 127.0.0.1:{cluster}")
    text = text.replace("http: 0.0.0.0:8222", f"http: 127.0.0.1:{http}")
    text = text.replace("server_name: $POD_NAME", f'server_name: "n{me}"')
    # The pid file and store move into the test's directory (set by Nats below).
    text = re.sub(r"pid_file: .*\n", "", text)
    text = re.sub(r"jetstream \{.*?\n\}\n", "", text, flags=re.S)
    return text


class ClusterNats(Nats):
    def __init__(self, work, name, pw, conf: str, port: int, http: int):
        super().__init__(work, name, pw, port=port)
        self.http = http
        for name in ("tls.conf", "cluster-tls.conf"):
            (self.dir / name).write_text((TLS / name).read_text().replace("/etc/nats/tls", str(work)))
        self.conf.write_text(conf + f'\njetstream {{ store_dir: "{self.dir / "js"}" }}\n')

    def meta_leader(self) -> str | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http}/jsz", timeout=2) as r:
                return (json.load(r).get("meta_cluster") or {}).get("leader") or None
        except OSError:
            return None

    def routes(self) -> int | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http}/routez", timeout=2) as r:
                return json.load(r).get("num_routes")
        except OSError:
            return None

    def stream_messages(self, stream: str) -> int | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http}/jsz?accounts=true&streams=true", timeout=2) as r:
                jsz = json.load(r)
        except OSError:
            return None
        for account in jsz.get("account_details") or []:
            for s in account.get("stream_detail") or []:
                if s["name"] == stream:
                    return s["state"]["messages"]
        return None


async def submit(nc, i: int) -> str:
    body = {"channel": "CHANNEL_WEB", "channelRef": f"r3-{i}", "description": TEXTS[i % len(TEXTS)],
            "consumer": {"phone": f"1380000{i:04d}"}}
    for _ in range(10):  # a request may time out while the cluster elects a leader: resend (idempotent)
        try:
            reply = await nc.request("redress.intake.v1.submit.web", json.dumps(body).encode(), timeout=10,
                                     headers={"Content-Type": "application/json", "Nats-Msg-Id": f"web:r3-{i}"})
            return json.loads(reply.data)["receipt"]["complaintId"]
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError):
            await asyncio.sleep(0.5)
    raise RuntimeError(f"complaint r3-{i} got no receipt")


async def main() -> int:
    results: list[bool] = []
    pw = passwords()
    work = workdir("redress-r3-")
    make_ca(work)
    tls = ssl.create_default_context(cafile=str(work / "ca.crt"))
    ports = [(free_port(), free_port(), free_port()) for _ in range(3)]
    servers = [ClusterNats(work, f"n{i}", pw, cluster_settings(ports, i), ports[i][0], ports[i][2]) for i in range(3)]
    for s in servers:
        s.start()
    urls = ",".join(s.url.replace("nats://", "tls://") for s in servers)

    async def formed():
        # Routed to both peers, and agreeing on a meta leader. (Started right after the election,
        # with TLS routes still settling — duplicates being closed — nats-server 2.9.10 dropped
        # JetStream API replies to a client; a service that gets no answer at start exits and is
        # restarted, as a pod would be.)
        leaders = {s.meta_leader() for s in servers}
        routed = all(s.routes() == 2 for s in servers)
        return leaders if routed and len(leaders) == 1 and None not in leaders else None
    leader = await eventually("the three servers to elect a JetStream meta leader", formed, timeout=30)
    check(results, f"three nats-servers with the component's cluster settings form a cluster (meta leader {leader})", True)
    db = Database()
    services: list[Service] = []
    try:
        # One after another: nats-server 2.9.10 left one of several simultaneous creations of
        # the same R3 stream unanswered here, and a service whose declaration times out exits
        # (in Kubernetes the pod restarts and the stream then exists).
        for name in ("intake", "classification", "case-coordination"):
            services.append(Service(work, name, urls, pw[name], db, {
                "REDRESS_STREAM_REPLICAS": "3", "REDRESS_CLASSIFICATION_TARGET_PRECISION": "0",
                "REDRESS_NATS_TLS_CA": str(work / "ca.crt")}))
            await services[-1].ready()
        check(results, "the services start against the three-server cluster with R3 streams, over TLS", True)

        web = await nats.connect(servers[0].url, user="channel-web", password=pw["channel-web"],
                                 inbox_prefix="_INBOX_channel-web", tls=tls)
        ids = [await submit(web, i) for i in range(5)]
        servers[2].kill()
        ids += [await submit(web, i) for i in range(5, 15)]
        servers[2].start()
        ids += [await submit(web, i) for i in range(15, 20)]
        check(results, "20 complaints receipted while one server was killed and restarted", len(set(ids)) == 20)

        audit = await nats.connect(servers[0].url, user="compliance-audit", password=pw["compliance-audit"],
                                   inbox_prefix="_INBOX_compliance-audit", tls=tls)
        js = audit.jetstream(timeout=10)
        # The auditor's own consumer name on CASE_EVENTS (its user may create no other).
        durable = next(c["durable"] for c in bus()["services"]["compliance-audit"]["consumers"]
                       if c["stream"] == "CASE_EVENTS")
        sub = await js.pull_subscribe("redress.case.v1.*.created", durable=durable, stream="CASE_EVENTS",
                                      config=ConsumerConfig(name=durable, durable_name=durable,
                                                            ack_policy=AckPolicy.EXPLICIT,
                                                            deliver_policy=DeliverPolicy.ALL))
        created: list[str] = []

        async def all_cases():
            try:
                for m in await sub.fetch(50, timeout=1):
                    created.append(m.headers.get("Nats-Msg-Id", "") if m.headers else "")
                    await m.ack()
            except nats.errors.TimeoutError:
                pass
            return True if len(created) >= 20 else None
        await eventually("a case for each of the 20 complaints", all_cases)
        await asyncio.sleep(0)  # no more deliveries pending in this tick
        check(results, "every accepted complaint opened exactly one case (20 case_created, distinct)",
              len(created) == 20 and len(set(created)) == 20, f"{len(created)} events, {len(set(created))} distinct")

        async def caught_up():
            counts = [s.stream_messages("CASE_EVENTS") for s in servers]
            return counts if None not in counts and len(set(counts)) == 1 else None
        counts = await eventually("the restarted server's CASE_EVENTS replica to catch up", caught_up)
        check(results, "all three servers hold the same CASE_EVENTS after the restart", True, str(counts))
        print(f"      CASE_EVENTS messages per server: {counts}")
        await web.close()
        await audit.close()
    finally:
        for s in services:
            s.stop()
        for s in servers:
            s.kill()
        db.drop()
    if not all(results):
        print(f"logs: {work}")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
