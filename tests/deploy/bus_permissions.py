"""The secured bus, tested against a real nats-server started with the config generated from
deploy/nats/bus.toml, and the whole suite (all six services as processes, each with its own
NATS user) working end to end under those permissions.

    python tests/deploy/bus_permissions.py      (needs nats-server, Postgres, the debug binaries)

Proves: a channel publishing on another channel's subject is refused; a department
subscribing to another department's subjects gets a permission violation, and cannot widen
its JetStream consumer's filter; a service cannot delete another's stream or read another's
consumer; a channel's complaint reaches the department it was routed to — and only it — and
notification, analytics and compliance-audit each do their part with their own rights.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from harness import ROOT, Database, Nats, Service, binary, check, eventually, passwords, psql, workdir

COLLECTION = ("A debt collector calls me and my family every day about a debt I do not owe, and "
              "threatened to tell my employer. They will not send validation of the debt.")
CREDIT = ("My credit report shows a late payment on an account I paid on time. I disputed it with "
          "the credit bureau twice and they verified the wrong information.")


async def connect(server: Nats, user: str, pw: dict[str, str], errors: list[str]):
    async def on_error(e):
        errors.append(str(e))
    return await nats.connect(server.url, user=user, password=pw[user], inbox_prefix=f"_INBOX_{user}",
                              error_cb=on_error, allow_reconnect=False, connect_timeout=5)


async def violation(errors: list[str], fragment: str) -> bool:
    async def seen():  # nats-py lower-cases the server's -ERR text
        return True if any("permissions violation" in e.lower() and fragment.lower() in e.lower()
                           for e in errors) else None
    try:
        return await eventually(f"a permissions violation for {fragment}", seen, timeout=5)
    except TimeoutError:
        return False


async def submit(nc, channel_ref: str, text: str, phone: str) -> dict:
    body = {"channel": "CHANNEL_WEB", "channelRef": channel_ref, "description": text,
            "consumer": {"phone": phone}}
    reply = await nc.request("redress.intake.v1.submit.web", json.dumps(body).encode(), timeout=30,
                             headers={"Content-Type": "application/json", "Nats-Msg-Id": f"web:{channel_ref}"})
    return json.loads(reply.data)


async def refusals(server: Nats, pw: dict[str, str], results: list) -> None:
    # A channel may publish on its own submit subject only.
    errors: list[str] = []
    web = await connect(server, "channel-web", pw, errors)
    await web.publish("redress.intake.v1.submit.app", b"{}")
    await web.flush()
    check(results, "channel web publishing on redress.intake.v1.submit.app is refused",
          await violation(errors, "redress.intake.v1.submit.app"), str(errors))
    errors.clear()
    await web.publish("redress.complaint.v1.received", b"forged")
    await web.flush()
    check(results, "a channel cannot forge an event", await violation(errors, "redress.complaint.v1.received"))
    errors.clear()
    await web.subscribe("_INBOX.>")
    await web.flush()
    check(results, "a channel cannot read the shared inbox space (others' replies and pulls)",
          await violation(errors, "_INBOX.>"), str(errors))
    await web.close()

    # A department sees its own case subjects only, by core subscription or by consumer.
    errors = []
    dept = await connect(server, "department-collections", pw, errors)
    await dept.subscribe("redress.case.v1.lending.>")
    await dept.flush()
    check(results, "department collections subscribing to redress.case.v1.lending.> gets a permission violation",
          await violation(errors, "redress.case.v1.lending.>"), str(errors))
    errors.clear()
    await dept.subscribe("redress.case.v1.>")
    await dept.flush()
    check(results, "… and to every case (redress.case.v1.>)", await violation(errors, "redress.case.v1.>"))
    js = dept.jetstream(timeout=3)
    wide = ConsumerConfig(name="department-collections", durable_name="department-collections",
                          filter_subject="redress.case.v1.>", ack_policy=AckPolicy.EXPLICIT)
    refused = False
    try:
        await js.add_consumer("CASE_EVENTS", wide)
    except Exception:  # noqa: BLE001  the request is refused: a timeout or an error, never a consumer
        refused = True
    check(results, "a department cannot create a consumer on every case subject",
          refused and await violation(errors, "CONSUMER.CREATE.CASE_EVENTS.department-collections.redress.case.v1.>"))
    legacy = ConsumerConfig(durable_name="department-collections", filter_subject="redress.case.v1.>",
                            ack_policy=AckPolicy.EXPLICIT)
    refused = False
    try:
        await js.add_consumer("CASE_EVENTS", legacy)
    except Exception:  # noqa: BLE001
        refused = True
    check(results, "… nor through the legacy DURABLE.CREATE subject (filter in the body)",
          refused and await violation(errors, "CONSUMER.DURABLE.CREATE.CASE_EVENTS"))
    await dept.close()

    # A service cannot delete a stream — another's or its own — nor purge it.
    errors = []
    classification = await connect(server, "classification", pw, errors)
    cjs = classification.jetstream(timeout=3)
    deleted = True
    try:
        await cjs.delete_stream("INTAKE")
    except Exception:  # noqa: BLE001
        deleted = False
    check(results, "classification cannot delete intake's stream INTAKE",
          not deleted and await violation(errors, "STREAM.DELETE.INTAKE"))
    purged = True
    try:
        await cjs.purge_stream("CASE_EVENTS")
    except Exception:  # noqa: BLE001
        purged = False
    check(results, "classification cannot purge CASE_EVENTS",
          not purged and await violation(errors, "STREAM.PURGE.CASE_EVENTS"))
    pulled = True
    try:
        await cjs.consumer_info("COMPLAINT_EVENTS", "case-coordination")
    except Exception:  # noqa: BLE001
        pulled = False
    check(results, "classification cannot touch case-coordination's consumer",
          not pulled and await violation(errors, "CONSUMER.INFO.COMPLAINT_EVENTS.case-coordination"))
    await classification.close()
    # The auditor reads every event, but not the raw submissions (personal data, intake's alone).
    errors = []
    audit = await connect(server, "compliance-audit", pw, errors)
    await audit.subscribe("redress.case.v1.>")
    await audit.subscribe("redress.intake.v1.submit.web")
    await audit.flush()
    check(results, "compliance-audit reads every case event but not raw submissions",
          await violation(errors, "redress.intake.v1.submit.web")
          and not any("redress.case.v1" in e for e in errors), str(errors))
    await audit.close()
    intake = await connect(server, "intake", pw, [])
    info = await intake.jetstream(timeout=5).stream_info("INTAKE")
    check(results, "INTAKE is still there", info.config.name == "INTAKE")
    await intake.close()


async def pipeline(server: Nats, pw: dict[str, str], results: list) -> None:
    web = await connect(server, "channel-web", pw, [])
    collections = await connect(server, "department-collections", pw, [])
    js = collections.jetstream(timeout=10)
    # As docs/departments.md: a durable pull consumer, named, with its filter in the request.
    config = ConsumerConfig(name="department-collections", durable_name="department-collections",
                            filter_subject="redress.case.v1.collections.>", ack_policy=AckPolicy.EXPLICIT,
                            deliver_policy=DeliverPolicy.ALL)
    sub = await js.pull_subscribe("redress.case.v1.collections.>", durable="department-collections",
                                  stream="CASE_EVENTS", config=config)
    mine = await submit(web, "deploy-collection", COLLECTION, "13800000001")
    other = await submit(web, "deploy-credit", CREDIT, "13800000002")
    check(results, "channel web gets receipts under its permissions",
          "receipt" in mine and "receipt" in other, f"{mine} {other}")
    seen: list[tuple[str, str]] = []

    async def created_and_assigned():
        try:
            for m in await sub.fetch(10, timeout=1):
                seen.append((m.subject, (m.headers or {}).get("Redress-Event-Type", "")))
                await m.ack()
        except nats.errors.TimeoutError:
            pass
        types = {t for _, t in seen}
        return True if {"case_created", "case_assigned"} <= types else None
    await eventually("case_created and case_assigned for collections", created_and_assigned)
    check(results, "the complaint reaches its department (case created and assigned) through the pipeline", True)
    check(results, "the department's consumer holds only its own subjects",
          all(s.startswith("redress.case.v1.collections.") for s, _ in seen), str(seen))
    await web.close()
    await collections.close()


def newer_services(work: Path, server: Nats, pw: dict[str, str], db: Database, intake: Service) -> list[Service]:
    """Notification (calling intake's GetContact with a service key), analytics and
    compliance-audit (signing checkpoints with a key of its own), each with its own NATS user."""
    (work / "service").mkdir()
    # The key id is the file's stem: `dev`, as the development public key the services trust.
    shutil.copy(ROOT / "deploy/local/dev-keys/dev.key.pem", work / "service/dev.pem")
    audit_key = work / "audit-signing.key"
    subprocess.run([str(binary("compliance-audit")), "keygen", "audit.deploy.test", str(audit_key)],
                   check=True, stdout=subprocess.DEVNULL)
    return [
        Service(work, "notification", server.url, pw["notification"], db,
                {"REDRESS_INTAKE_URL": f"http://{intake.grpc}", "REDRESS_SERVICE_KEY": str(work / "service/dev.pem")}),
        Service(work, "analytics", server.url, pw["analytics"], db),
        Service(work, "compliance-audit", server.url, pw["compliance-audit"], db,
                {"REDRESS_AUDIT_SIGNING_KEY_FILE": str(audit_key)}),
    ]


async def downstream(db: Database, results: list) -> None:
    """What the newer services made of the pipeline's complaints, read from their schemas."""
    async def count(sql: str):
        out = subprocess.run([psql(), "-qAt", db.url, "-c", sql], capture_output=True, text=True)
        n = int(out.stdout.strip() or 0) if out.returncode == 0 else 0
        return n if n > 0 else None
    # Two complaints: received, registered, classified, case opened and assigned — at least 10
    # events, each appended once.
    entries = await eventually("compliance-audit's log entries",
                               lambda: count("SELECT CASE WHEN count(*) >= 10 THEN count(*) END FROM compliance_audit.log_entries"))
    check(results, "compliance-audit appended the pipeline's events under its permissions", entries is not None)
    facts = await eventually("analytics' facts", lambda: count(
        "SELECT CASE WHEN count(*) = 2 THEN 2 END FROM analytics.facts WHERE category <> ''"))
    check(results, "analytics counted both complaints, classified, under its permissions", facts == 2)
    notices = await eventually("notification's receipts", lambda: count(
        "SELECT CASE WHEN count(DISTINCT complaint_id) = 2 THEN 2 END FROM notification.deliveries"))
    check(results, "notification recorded a notice for each complaint under its permissions", notices == 2)


async def main() -> int:
    results: list[bool] = []
    pw = passwords()
    work = workdir("redress-bus-")
    server = Nats(work, "n1", pw)
    server.start()
    db = Database()
    services: list[Service] = []
    try:
        for name in ("intake", "classification", "case-coordination"):
            services.append(Service(work, name, server.url, pw[name], db,
                                    {"REDRESS_CLASSIFICATION_TARGET_PRECISION": "0"}))
        services += newer_services(work, server, pw, db, services[0])
        for s in services:
            await s.ready()
        check(results, "all six services start with their own users", True)
        await refusals(server, pw, results)
        await pipeline(server, pw, results)
        await downstream(db, results)
        # The services name their connections redress-<service>; the test's own clients do not.
        denied = [l for l in server.violations().splitlines() if '"redress-' in l]
        check(results, "the services met no permission violation of their own", not denied, "\n".join(denied[:5]))
    finally:
        for s in services:
            s.stop()
        server.kill()
        db.drop()
    if not all(results):
        print(f"server log and service logs: {work}")
        for s in services:
            print(f"--- {s.name}\n" + s.log_path.read_text()[-1500:])
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
