#!/usr/bin/env python3
"""Follow one department's case events, as a department's own system would.

    department_subscriber.py --department risk-control [--nats nats://127.0.0.1:4222]
        [--consumer NAME] [--new-only] [--until EVENT_TYPE] [--count N] [--timeout SECONDS]

Creates (or resumes) a durable JetStream consumer on CASE_EVENTS filtered to
redress.case.v1.<department>.>, decodes each redress.events.v1.Event with classes generated
from the repository's proto/ files (grpcio-tools), prints one JSON line per event and acks it
only after printing: a crash before the ack redelivers the event, nothing is skipped.
Needs: nats-py, grpcio-tools, protobuf (docs/examples/requirements.txt).
"""

import argparse
import asyncio
import importlib
import json
import pathlib
import sys
import tempfile

import nats
from google.protobuf import json_format
from grpc_tools import protoc
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

ROOT = pathlib.Path(__file__).resolve().parents[2]


def event_class(proto_root: pathlib.Path):
    """redress.events.v1.Event, compiled from the .proto files into a temporary module tree."""
    out = pathlib.Path(tempfile.mkdtemp(prefix="redress-proto-"))
    files = [str(p.relative_to(proto_root)) for p in sorted(proto_root.glob("redress/**/*.proto"))]
    include = pathlib.Path(protoc.__file__).parent / "_proto"
    code = protoc.main(["protoc", f"-I{proto_root}", f"-I{include}", f"--python_out={out}", *files])
    if code != 0:
        sys.exit(f"protoc could not compile {proto_root}")
    sys.path.insert(0, str(out))
    return importlib.import_module("redress.events.v1.event_pb2").Event


async def follow(args) -> int:
    Event = event_class(pathlib.Path(args.proto))
    prefix = f"{args.namespace}." if args.namespace else ""
    stream = f"{args.namespace}_CASE_EVENTS" if args.namespace else "CASE_EVENTS"
    subject = f"{prefix}redress.case.v1.{args.department}.>"
    consumer = args.consumer or f"department-{args.department}"

    nc = await nats.connect(args.nats)
    js = nc.jetstream()
    config = ConsumerConfig(
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.NEW if args.new_only else DeliverPolicy.ALL,
        ack_wait=30,
    )
    sub = await js.pull_subscribe(subject, durable=consumer, stream=stream, config=config)
    seen = 0
    deadline = asyncio.get_running_loop().time() + args.timeout
    try:
        while asyncio.get_running_loop().time() < deadline:
            try:
                messages = await sub.fetch(10, timeout=1)
            except nats.errors.TimeoutError:
                continue
            for msg in messages:
                event = Event.FromString(msg.data)
                kind = event.WhichOneof("payload")
                line = {
                    "subject": msg.subject[len(prefix):],
                    "type": kind,
                    "event": json_format.MessageToDict(event),
                }
                print(json.dumps(line, ensure_ascii=False), flush=True)
                await msg.ack()
                seen += 1
                if kind == args.until or (args.count and seen >= args.count):
                    return 0
    finally:
        await nc.close()
    print(f"timed out after {args.timeout}s with {seen} events", file=sys.stderr)
    return 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--department", required=True, help="e.g. risk-control (see docs/departments.md)")
    parser.add_argument("--nats", default="nats://127.0.0.1:4222")
    parser.add_argument("--namespace", default="", help="the suite's REDRESS_BUS_NAMESPACE, if it has one")
    parser.add_argument("--consumer", help="durable consumer name (default department-<department>)")
    parser.add_argument("--new-only", action="store_true", help="start with events published from now on")
    parser.add_argument("--until", help="stop after the first event of this type, e.g. case_assigned")
    parser.add_argument("--count", type=int, default=0, help="stop after this many events")
    parser.add_argument("--timeout", type=float, default=3600.0, help="give up after this many seconds")
    parser.add_argument("--proto", default=str(ROOT / "proto"), help="the proto/ directory of the contract")
    return asyncio.run(follow(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
