"""A client not written in Rust: lists the services through gRPC reflection and checks
health, against `redress dev`. Run by `make test` through run.sh."""

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

EXPECTED = {"redress.intake.v1.IntakeService", "grpc.health.v1.Health"}


def main(address: str, token: str) -> int:
    passed = failed = 0

    def check(name, ok, detail=""):
        nonlocal passed, failed
        print(("ok    " if ok else "FAIL  ") + name + (f": {detail}" if detail and not ok else ""))
        if ok:
            passed += 1
        else:
            failed += 1

    with grpc.insecure_channel(address) as channel:
        grpc.channel_ready_future(channel).result(timeout=30)
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        names = set()
        for response in stub.ServerReflectionInfo(iter([request]), timeout=10):
            names |= {s.name for s in response.list_services_response.service}
        check("reflection lists the Redress and standard services", EXPECTED <= names, sorted(names))

        symbol = reflection_pb2.ServerReflectionRequest(file_containing_symbol="redress.intake.v1.IntakeService")
        described = any(r.HasField("file_descriptor_response") for r in stub.ServerReflectionInfo(iter([symbol]), timeout=10))
        check("reflection describes redress.intake.v1.IntakeService", described)

        health = health_pb2_grpc.HealthStub(channel)
        for service in ["", "redress.intake.v1.IntakeService"]:
            status = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status
            check(f"health of '{service or 'server'}' is SERVING", status == health_pb2.HealthCheckResponse.SERVING, status)

        # The API itself refuses a call without a bearer token.
        get_complaint = channel.unary_unary(
            "/redress.intake.v1.IntakeService/GetComplaint",
            request_serializer=lambda _: b"",
            response_deserializer=lambda b: b,
        )
        try:
            get_complaint(None, timeout=10)
            check("a call without a token is refused", False, "it was answered")
        except grpc.RpcError as error:
            check("a call without a token is UNAUTHENTICATED", error.code() == grpc.StatusCode.UNAUTHENTICATED, error.code())

        # With the token `redress token` mints, the same suite answers (an empty list).
        list_complaints = channel.unary_unary(
            "/redress.intake.v1.IntakeService/ListComplaints",
            request_serializer=lambda _: b"",
            response_deserializer=lambda b: b,
        )
        try:
            list_complaints(None, timeout=10, metadata=[("authorization", f"Bearer {token}")])
            check("a call with the development token is answered", True)
        except grpc.RpcError as error:
            check("a call with the development token is answered", False, f"{error.code()} {error.details()}")

        # Reflection on intake's port lists intake's API only.
        check("reflection lists only the services this port serves",
              "redress.cases.v1.CaseService" not in names, sorted(names))

    print(f"python-grpc: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
