"""Runs a .tflite model's signatures for the JVM tests of the Android app, through LiteRT's Python interpreter.

TFLite's native library is built for Android and does not load on a desktop JVM, so the Activity tests send
each signature call here (the same bytes the phone's interpreter would get) and show what LiteRT returns.

Protocol over stdin/stdout, one call at a time:
  start:     -> {"signatures": [...]}\n
  request:   {"signature": NAME, "inputs": [{"name", "dtype", "shape", "length"}, ...]}\n + input bytes, in order
  response:  {"outputs": [{"name", "dtype", "shape", "length"}, ...]}\n + output bytes, in order
             or {"error": MESSAGE}\n
"""
import json
import sys

import numpy as np
from ai_edge_litert.interpreter import Interpreter


def _read_exact(stream, n):
    data = stream.read(n)
    if len(data) != n:
        raise EOFError(f"expected {n} bytes of tensor data, got {len(data)}")
    return data


def _send(stream, header, payloads=()):
    stream.write(json.dumps(header).encode() + b"\n")
    for payload in payloads:
        stream.write(payload)
    stream.flush()


def main(model_path):
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    interpreter = Interpreter(model_path=model_path)
    runners = {}
    _send(stdout, {"signatures": sorted(interpreter.get_signature_list())})
    while True:
        line = stdin.readline()
        if not line:
            return
        request = json.loads(line)
        inputs = {}
        for spec in request["inputs"]:
            raw = _read_exact(stdin, spec["length"])
            little_endian = np.dtype(spec["dtype"]).newbyteorder("<")
            inputs[spec["name"]] = np.frombuffer(raw, dtype=little_endian).reshape(spec["shape"])
        try:
            name = request["signature"]
            if name not in runners:
                runners[name] = interpreter.get_signature_runner(name)
            outputs = runners[name](**inputs)
        except Exception as e:  # the JVM side raises it as the interpreter's error
            _send(stdout, {"error": f"{type(e).__name__}: {e}"})
            continue
        header, payloads = [], []
        for out_name in sorted(outputs):
            array = np.asarray(outputs[out_name])
            raw = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
            header.append({"name": out_name, "dtype": array.dtype.name, "shape": list(array.shape), "length": len(raw)})
            payloads.append(raw)
        _send(stdout, {"outputs": header}, payloads)


if __name__ == "__main__":
    main(sys.argv[1])
