#!/usr/bin/env python3
"""TF-Serving Predict client for systole's integration tests, speaking as the Azure ML accel client does.

It generates the Python stubs from server/proto at run time (grpc_tools.protoc, into a temporary directory), so
the client always matches the proto files the Rust server is built from. Each case sends one request and prints
one JSON line:

    {"case", "code", "details", "request_id", "shape", "top1", "sums"}

`code` is "OK" or the grpc.StatusCode name; `request_id` is the `request_id` trailing-metadata value (or null);
`shape`, `top1` (argmax per row) and `sums` (row sums) describe `outputs["output_alias"]` of a successful reply.
An RPC error is a result, not a crash. Exit status: 0 when the cases ran, 2 on a usage error.

Trust: `--ca PEM` makes a TLS channel trusting that PEM. `--tls` makes one with gRPC's default roots, as the Azure
client does (`ssl_channel_credentials()` without arguments): the file named by GRPC_DEFAULT_SSL_ROOTS_FILE_PATH
replaces those roots, which is how that client is made to trust a self-signed certificate. TLS is asked for
explicitly rather than inferred from that variable because some environments set it for every process. Without
either, the channel is plaintext. The certificate must name the host of `--target` (a DNS or IP subjectAltName),
or `--tls-name` must give a name that it does.
"""

import argparse
import json
import pathlib
import sys
import tempfile

import grpc
import numpy as np
from grpc_tools import protoc

PROTO_DIR = pathlib.Path(__file__).resolve().parents[2] / "proto"
PROTOS = [
    "tensorflow/core/framework/types.proto",
    "tensorflow/core/framework/tensor_shape.proto",
    "tensorflow/core/framework/tensor.proto",
    "tensorflow_serving/apis/model.proto",
    "tensorflow_serving/apis/predict.proto",
    "tensorflow_serving/apis/prediction_service.proto",
]
CASES = [
    "images",
    "float_content",
    "float_val",
    "corrupt_image",
    "empty_tensor",
    "wrong_dtype",
    "oversized",
    "unimplemented",
]
OVERSIZED_BYTES = 64 << 20


def load_stubs(out):
    """Compiles the proto files into directory `out` and imports the generated modules from it."""
    # The well-known types (google/protobuf/wrappers.proto) ship inside grpc_tools.
    well_known = pathlib.Path(protoc.__file__).parent / "_proto"
    args = ["protoc", f"-I{PROTO_DIR}", f"-I{well_known}", f"--python_out={out}", f"--grpc_python_out={out}"]
    if protoc.main(args + PROTOS) != 0:
        sys.exit(f"tf_predict: protoc failed on {PROTO_DIR}")
    sys.path.insert(0, out)
    from tensorflow.core.framework import types_pb2
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    return types_pb2, predict_pb2, prediction_service_pb2_grpc


def make_channel(args):
    """Opens the channel: TLS trusting --ca, TLS with gRPC's default roots for --tls, else plaintext."""
    options = [("grpc.ssl_target_name_override", args.tls_name)] if args.tls_name else []
    if args.ca:
        creds = grpc.ssl_channel_credentials(root_certificates=pathlib.Path(args.ca).read_bytes())
    elif args.tls:
        creds = grpc.ssl_channel_credentials()
    else:
        return grpc.insecure_channel(args.target, options=options)
    return grpc.secure_channel(args.target, creds, options=options)


def float_input(size):
    """A deterministic [1,3,size,size] f32 tensor: a ramp over [-0.5, 0.5] repeating every 256 elements."""
    return ((np.arange(3 * size * size) % 256) / 255.0 - 0.5).astype("<f4").reshape(1, 3, size, size)


def build_request(case, args, types_pb2, predict_pb2):
    """The PredictRequest of a case; model_spec stays empty, as the Azure client leaves it."""
    request = predict_pb2.PredictRequest()
    tensor = request.inputs["images"]

    def strings(values):
        tensor.dtype = types_pb2.DT_STRING
        tensor.tensor_shape.dim.add().size = len(values)
        tensor.string_val.extend(values)

    if case == "images":
        strings([pathlib.Path(path).read_bytes() for path in args.images])
    elif case in ("float_content", "float_val"):
        data = float_input(args.size)
        tensor.dtype = types_pb2.DT_FLOAT
        for size in data.shape:
            tensor.tensor_shape.dim.add().size = size
        if case == "float_content":
            tensor.tensor_content = data.tobytes()
        else:
            tensor.float_val.extend(data.ravel().tolist())
    elif case == "corrupt_image":
        strings([b"not an image"])
    elif case == "empty_tensor":
        strings([])
    elif case == "wrong_dtype":
        tensor.dtype = types_pb2.DT_INT32
        tensor.tensor_shape.dim.add().size = 4
        tensor.int_val.extend([1, 2, 3, 4])
    elif case == "oversized":
        strings([bytes(OVERSIZED_BYTES)])
    return request


def describe_output(response, types_pb2):
    """shape, top1 and sums of outputs["output_alias"] (float_val or tensor_content), or Nones if absent."""
    if "output_alias" not in response.outputs:
        return None, None, None
    tensor = response.outputs["output_alias"]
    shape = [dim.size for dim in tensor.tensor_shape.dim]
    if tensor.dtype != types_pb2.DT_FLOAT or len(shape) != 2:
        return shape, None, None
    if tensor.tensor_content:
        values = np.frombuffer(tensor.tensor_content, dtype="<f4")
    else:
        values = np.array(tensor.float_val, dtype=np.float32)
    if values.size != np.prod(shape):
        return shape, None, None
    rows = values.reshape(shape)
    return shape, rows.argmax(axis=1).tolist(), [round(float(s), 6) for s in rows.sum(axis=1)]


def request_id_of(metadata):
    return next((value for key, value in metadata or () if key == "request_id"), None)


def run_case(case, args, channel, metadata, stubs):
    """Sends one case and returns its result line as a dict."""
    types_pb2, predict_pb2, service_grpc = stubs
    result = {"case": case, "code": "OK", "details": "", "request_id": None, "shape": None, "top1": None, "sums": None}
    try:
        if case == "unimplemented":
            # A method of TF-Serving's PredictionService that systole does not serve; the body is irrelevant.
            classify = channel.unary_unary(
                "/tensorflow.serving.PredictionService/Classify",
                request_serializer=lambda body: body,
                response_deserializer=lambda body: body,
            )
            _, call = classify.with_call(b"", metadata=metadata, timeout=args.timeout)
        else:
            request = build_request(case, args, types_pb2, predict_pb2)
            stub = service_grpc.PredictionServiceStub(channel)
            response, call = stub.Predict.with_call(request, metadata=metadata, timeout=args.timeout)
            result["shape"], result["top1"], result["sums"] = describe_output(response, types_pb2)
        result["request_id"] = request_id_of(call.trailing_metadata())
    except grpc.RpcError as error:
        result["code"] = error.code().name
        result["details"] = error.details() or ""
        result["request_id"] = request_id_of(error.trailing_metadata())
    return result


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True, help="HOST:PORT of the server")
    parser.add_argument("--ca", help="PEM file of the root to trust; TLS when given")
    parser.add_argument("--tls", action="store_true", help="TLS with gRPC's default roots (see above)")
    parser.add_argument("--tls-name", help="name to verify the server certificate against instead of HOST")
    parser.add_argument("--key", help="API key for the authorization header; none is sent without it")
    parser.add_argument("--bearer", action="store_true", help="send 'Bearer KEY' instead of the raw key")
    parser.add_argument("--service", default="systole", help="service name in x-ms-aml-grpc-service-route")
    parser.add_argument("--case", action="append", choices=CASES, help="case to run (repeatable; default all)")
    parser.add_argument("--size", type=int, default=32, help="H and W of the float cases' [1,3,H,W] input")
    parser.add_argument("--timeout", type=float, default=60.0, help="deadline of each call in seconds")
    parser.add_argument("images", nargs="*", help="image files (JPEG/PNG) for the images case")
    args = parser.parse_args()
    args.case = args.case or CASES
    if "images" in args.case and not args.images:
        parser.error("the images case needs image files")
    if args.bearer and not args.key:
        parser.error("--bearer needs --key")
    return args


def main():
    args = parse_args()
    # The generated modules stay loaded once imported, so their directory can go at once.
    with tempfile.TemporaryDirectory(prefix="systole-tf-stubs-") as out:
        stubs = load_stubs(out)
    metadata = [("x-ms-aml-grpc-service-route", f"/api/v1/service/{args.service}")]
    if args.key:
        metadata.append(("authorization", f"Bearer {args.key}" if args.bearer else args.key))
    with make_channel(args) as channel:
        for case in args.case:
            print(json.dumps(run_case(case, args, channel, metadata, stubs)), flush=True)


if __name__ == "__main__":
    main()
