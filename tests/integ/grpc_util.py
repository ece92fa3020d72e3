# SPDX-License-Identifier: MIT
"""A real gRPC client for the sluiced tests: Debian's python3-grpcio with
message classes generated at test time by Debian's protoc from the
project's proto/ files (grpc_tools is not used: Debian's is from 2018).
Calls go through grpc.Channel.unary_unary with the classes' serializers.
Run with /usr/bin/python3 (Debian's grpcio and protobuf)."""
import os
import shutil
import subprocess
import sys
import tempfile

import grpc

SRC = os.path.abspath(os.environ.get("SLUICE_SRC", os.path.join(os.path.dirname(__file__), "../..")))
PROTO = os.path.join(SRC, "proto")

RLS_PATH = "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit"
HEALTH_PATH = "/grpc.health.v1.Health/Check"

_gen = tempfile.mkdtemp(prefix="sluice-pb-")
_files = []
for root, _, names in os.walk(PROTO):
    for n in names:
        if n.endswith(".proto"):
            rel = os.path.relpath(os.path.join(root, n), PROTO)
            _files.append(rel)
# grpc/health/v1/health.proto would become the module grpc.health.v1, inside
# grpcio's own `grpc` package: generate it under another path (the proto
# package, hence the wire names, stay grpc.health.v1).
_inc = os.path.join(_gen, "in")
shutil.copytree(PROTO, _inc)
os.makedirs(os.path.join(_inc, "sluice_health"), exist_ok=True)
shutil.move(os.path.join(_inc, "grpc/health/v1/health.proto"),
            os.path.join(_inc, "sluice_health/health.proto"))
shutil.rmtree(os.path.join(_inc, "grpc"))
_files = [f if not f.startswith("grpc/") else "sluice_health/health.proto" for f in _files]
_out = os.path.join(_gen, "out")
os.makedirs(_out)
subprocess.check_call(["protoc", "-I" + _inc, "--python_out=" + _out] + sorted(_files))
for root, dirs, _ in os.walk(_out):
    for d in dirs:
        open(os.path.join(root, d, "__init__.py"), "a").close()
sys.path.insert(0, _out)

from envoy.service.ratelimit.v3 import rls_pb2  # noqa: E402
from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2  # noqa: E402
from sluice_health import health_pb2  # noqa: E402

Request = rls_pb2.RateLimitRequest
Response = rls_pb2.RateLimitResponse
Descriptor = ratelimit_pb2.RateLimitDescriptor
OK = rls_pb2.RateLimitResponse.OK
OVER_LIMIT = rls_pb2.RateLimitResponse.OVER_LIMIT
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class CleanExit:
    """Mixed into a daemon_util.Sluiced: stop() sends SIGTERM and requires a
    clean drain, exit 0 and no sanitizer report (under ASan a leak or a bad
    access makes sluiced exit non-zero and print one)."""

    def stop(self):
        code = self.terminate(30)
        log = self.logtext()
        super().stop()
        assert "Sanitizer" not in log, log[-3000:]
        assert code == 0, "sluiced exit status: %r, expected 0" % (code,)


def channel(port):
    return grpc.insecure_channel("127.0.0.1:%d" % port)


def stubs(ch):
    rls = ch.unary_unary(RLS_PATH, request_serializer=Request.SerializeToString,
                         response_deserializer=Response.FromString)
    health = ch.unary_unary(HEALTH_PATH,
                            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                            response_deserializer=health_pb2.HealthCheckResponse.FromString)
    return rls, health


def desc(*entries, hits=None, limit=None):
    """A RateLimitDescriptor from (key, value) pairs; hits sets its own
    hits_addend (0 allowed); limit = (requests_per_unit, unit number)."""
    d = Descriptor()
    for k, v in entries:
        e = d.entries.add()
        e.key = k
        e.value = v
    if hits is not None:
        d.hits_addend.value = hits
    if limit is not None:
        d.limit.requests_per_unit = limit[0]
        d.limit.unit = limit[1]
    return d


def request(domain, *descs, hits=0):
    r = Request(domain=domain, hits_addend=hits)
    for d in descs:
        r.descriptors.append(d)
    return r


def cleanup():
    shutil.rmtree(_gen, ignore_errors=True)
