#!/usr/bin/env python3
"""Call any Redress gRPC method from the command line, learning its types by server reflection
(a stand-in for grpcurl, which Debian does not package).

    grpc_call.py HOST:PORT list
    grpc_call.py HOST:PORT package.Service/Method '{"json": "request"}' [--token TOKEN]

The request and the answer are proto3 JSON. Needs: grpcio, grpcio-reflection, protobuf.
"""

import argparse
import json
import sys

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc


def reflect(channel, request):
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    return next(iter(stub.ServerReflectionInfo(iter([request]), timeout=10)))


def load_pool(channel, symbol):
    """A descriptor pool holding the file that defines `symbol` and everything it imports."""
    pool = descriptor_pool.DescriptorPool()
    seen, pending = set(), []
    answer = reflect(channel, reflection_pb2.ServerReflectionRequest(file_containing_symbol=symbol))
    pending.extend(answer.file_descriptor_response.file_descriptor_proto)
    files = {}
    while pending:
        proto = descriptor_pb2.FileDescriptorProto.FromString(pending.pop())
        if proto.name in seen:
            continue
        seen.add(proto.name)
        files[proto.name] = proto
        for dependency in proto.dependency:
            if dependency not in seen:
                answer = reflect(channel, reflection_pb2.ServerReflectionRequest(file_by_filename=dependency))
                pending.extend(answer.file_descriptor_response.file_descriptor_proto)
    added = set()

    def add(name):
        if name in added:
            return
        for dependency in files[name].dependency:
            add(dependency)
        pool.Add(files[name])
        added.add(name)

    for name in files:
        add(name)
    return pool


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("address")
    parser.add_argument("method", help="package.Service/Method, or `list`")
    parser.add_argument("request", nargs="?", default="{}")
    parser.add_argument("--token", help="bearer token (redress token --role …)")
    args = parser.parse_args()
    with grpc.insecure_channel(args.address) as channel:
        if args.method == "list":
            answer = reflect(channel, reflection_pb2.ServerReflectionRequest(list_services=""))
            for service in answer.list_services_response.service:
                print(service.name)
            return 0
        service_name, _, method_name = args.method.partition("/")
        pool = load_pool(channel, service_name)
        method = pool.FindServiceByName(service_name).FindMethodByName(method_name)
        request_class = message_factory.GetMessageClass(method.input_type)
        response_class = message_factory.GetMessageClass(method.output_type)
        request = json_format.Parse(args.request, request_class())
        call = channel.unary_unary(
            f"/{service_name}/{method_name}",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response_class.FromString,
        )
        metadata = [("authorization", f"Bearer {args.token}")] if args.token else []
        try:
            response = call(request, timeout=30, metadata=metadata)
        except grpc.RpcError as error:
            print(f"{error.code().name}: {error.details()}", file=sys.stderr)
            return 1
        print(json.dumps(json_format.MessageToDict(response), ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
