#!/usr/bin/env python3
"""KServe v2 client for systole's integration tests, using NVIDIA's tritonclient over gRPC or HTTP/REST.

Each case makes the calls of one check and prints one JSON line:

    {"case", "code", "details", "request_id", "shape", "top1", "sums", "value"}

`code` is "OK", the gRPC status name of an InferenceServerException over gRPC ("NOT_FOUND", tritonclient's
"StatusCode." prefix dropped), its HTTP status over HTTP ("404"), "CLIENT_ERROR" for an error tritonclient
raised without a status, or the exception's class name for a transport failure (refused connection, TLS) or
an unparsable reply.
`shape`, `top1` (argmax per row) and `sums` (row sums) describe the `probabilities` output of an inference.
`value` carries the answer of the other cases: the boolean of live/ready/model_ready (tritonclient's HTTP client
turns any non-200 status into false rather than an error) and the names and shapes of metadata.
`request_id` is always null: tritonclient exposes neither trailing metadata nor response headers.
Exit status: 0 when the cases ran, 2 on a usage error.

Over HTTP, the `_json` cases send their input as JSON, BYTES elements as base64 text (JSON cannot carry raw
bytes, and tritonclient refuses non-UTF-8 strings), and ask for the output as JSON. The other cases use the
binary-tensor extension: infer_bytes and corrupt_image ask for binary outputs with the request-level
`binary_data_output` parameter (tritonclient's default when no output is named), infer_fp32 and unknown_model
with the output-level `binary_data` parameter.
"""

import argparse
import base64
import http.client
import json
import pathlib

import numpy as np

CASES = [
    "live",
    "ready",
    "model_ready",
    "metadata",
    "infer_bytes",
    "infer_bytes_json",
    "infer_fp32",
    "infer_fp32_json",
    "corrupt_image",
    "unknown_model",
]
HTTP_ONLY = {"infer_bytes_json", "infer_fp32_json"}
OUTPUT = "probabilities"
UNKNOWN_MODEL = "no-such-model"


def float_input(size):
    """The same deterministic [1,3,size,size] ramp as tf_predict.py, so both protocols can be compared."""
    return ((np.arange(3 * size * size) % 256) / 255.0 - 0.5).astype(np.float32).reshape(1, 3, size, size)


def make_client(args):
    """The tritonclient module and client for --protocol, with TLS trusting --ca when given."""
    if args.protocol == "grpc":
        import tritonclient.grpc as tc

        # tritonclient reads root_certificates as a file path.
        return tc, tc.InferenceServerClient(args.url, ssl=bool(args.ca), root_certificates=args.ca)
    import tritonclient.http as tc

    if args.ca:
        return tc, tc.InferenceServerClient(args.url, ssl=True, ssl_options={"ca_certs": args.ca})
    return tc, tc.InferenceServerClient(args.url)


def bytes_input(tc, items, binary):
    """A BYTES [N] input of `items`; as base64 text when not binary."""
    tensor = tc.InferInput("images", [len(items)], "BYTES")
    if binary:
        tensor.set_data_from_numpy(np.array(items, dtype=np.object_))
    else:
        text = [base64.b64encode(item).decode("ascii") for item in items]
        tensor.set_data_from_numpy(np.array(text, dtype=np.object_), binary_data=False)
    return tensor


def fp32_input(tc, args, binary):
    data = float_input(args.size)
    tensor = tc.InferInput("input", list(data.shape), "FP32")
    if args.protocol == "grpc":
        tensor.set_data_from_numpy(data)
    else:
        tensor.set_data_from_numpy(data, binary_data=binary)
    return tensor


def requested_output(tc, args, binary):
    """The `probabilities` output, as binary or JSON over HTTP (gRPC has no choice to make)."""
    if args.protocol == "grpc":
        return [tc.InferRequestedOutput(OUTPUT)]
    return [tc.InferRequestedOutput(OUTPUT, binary_data=binary)]


def describe(result):
    """shape, top1 and sums of the `probabilities` output, or Nones when it is missing."""
    rows = result.as_numpy(OUTPUT)
    if rows is None or rows.ndim != 2:
        return (None if rows is None else list(rows.shape)), None, None
    return list(rows.shape), rows.argmax(axis=1).tolist(), [round(float(s), 6) for s in rows.sum(axis=1)]


def tensor_metadata(tensors):
    """name/datatype/shape of metadata tensors, as ints whether they came from JSON or protobuf."""
    return [
        {"name": t["name"], "datatype": t["datatype"], "shape": [int(d) for d in t["shape"]]} for t in tensors
    ]


def metadata(client, args, headers):
    grpc = args.protocol == "grpc"
    extra = {"as_json": True} if grpc else {}
    server = client.get_server_metadata(headers=headers, **extra)
    model = client.get_model_metadata(args.model, headers=headers, **extra)
    return {
        "server": {"name": server.get("name"), "version": server.get("version")},
        "model": {
            "name": model.get("name"),
            "inputs": tensor_metadata(model.get("inputs", [])),
            "outputs": tensor_metadata(model.get("outputs", [])),
        },
    }


def run_case(case, args, tc, client, headers):
    """Runs one case and returns its result line as a dict."""
    result = {"case": case, "code": "OK", "details": "", "request_id": None}
    result.update({"shape": None, "top1": None, "sums": None, "value": None})
    try:
        if case == "live":
            result["value"] = client.is_server_live(headers=headers)
        elif case == "ready":
            result["value"] = client.is_server_ready(headers=headers)
        elif case == "model_ready":
            result["value"] = client.is_model_ready(args.model, headers=headers)
        elif case == "metadata":
            result["value"] = metadata(client, args, headers)
        else:
            model, binary = args.model, not case.endswith("_json")
            if case.startswith("infer_bytes"):
                inputs, outputs = [bytes_input(tc, args.image_data, binary)], None
                if not binary:
                    outputs = requested_output(tc, args, binary)
            elif case == "corrupt_image":
                inputs, outputs = [bytes_input(tc, [b"not an image"], True)], None
            else:
                inputs, outputs = [fp32_input(tc, args, binary)], requested_output(tc, args, binary)
                if case == "unknown_model":
                    model = UNKNOWN_MODEL
            # A copy: tritonclient's HTTP infer writes Inference-Header-Content-Length into the dict it is given,
            # which would then be sent, stale, with every later request.
            answer = client.infer(model, inputs, outputs=outputs, headers=dict(headers or {}))
            result["shape"], result["top1"], result["sums"] = describe(answer)
    except tc.InferenceServerException as error:
        status = error.status()
        result["code"] = status.removeprefix("StatusCode.") if status else "CLIENT_ERROR"
        result["details"] = error.message() or ""
    except (OSError, http.client.HTTPException, ValueError, KeyError) as error:
        # A transport failure (refused, TLS, connection closed) or a reply tritonclient cannot parse (such as FP32
        # data outside raw_output_contents over gRPC): reported by class name, as data like any other outcome.
        result["code"], result["details"] = type(error).__name__, str(error)
    return result


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="HOST:PORT of the server (no scheme)")
    parser.add_argument("--protocol", choices=["grpc", "http"], default="grpc")
    parser.add_argument("--ca", help="PEM file of the root to trust; TLS when given")
    parser.add_argument("--key", help="API key for the authorization header; none is sent without it")
    parser.add_argument("--bearer", action="store_true", help="send 'Bearer KEY' instead of the raw key")
    parser.add_argument("--model", default="resnet20-cifar10", help="model name (the package name)")
    parser.add_argument("--case", action="append", choices=CASES, help="case to run (repeatable; default all)")
    parser.add_argument("--size", type=int, default=32, help="H and W of the FP32 cases' [1,3,H,W] input")
    parser.add_argument("images", nargs="*", help="image files (JPEG/PNG) for the infer_bytes cases")
    args = parser.parse_args()
    if args.case is None:
        args.case = [c for c in CASES if args.protocol == "http" or c not in HTTP_ONLY]
    if args.protocol == "grpc" and HTTP_ONLY & set(args.case):
        parser.error(f"cases {sorted(HTTP_ONLY)} are HTTP only")
    if any(c.startswith("infer_bytes") for c in args.case) and not args.images:
        parser.error("the infer_bytes cases need image files")
    if args.bearer and not args.key:
        parser.error("--bearer needs --key")
    args.image_data = [pathlib.Path(path).read_bytes() for path in args.images]
    return args


def main():
    args = parse_args()
    headers = {"authorization": f"Bearer {args.key}" if args.bearer else args.key} if args.key else None
    tc, client = make_client(args)
    with client:
        for case in args.case:
            print(json.dumps(run_case(case, args, tc, client, headers)), flush=True)


if __name__ == "__main__":
    main()
