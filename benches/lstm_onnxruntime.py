"""ONNX Runtime running the same LSTM shapes as bellwether's `lstm` bench.

One LSTM layer (ONNX `LSTM` operator, forward direction), 60 steps,
8 input features, 32 hidden units, batches given on the command line, on
one thread (intra- and inter-op). Prints one JSON object per batch:
{"batch": B, "seconds": median seconds per forward pass, "runs": N}.

Usage: python lstm_onnxruntime.py --batches 1,64,1024,10000 [--steps 60]
       [--input 8] [--hidden 32] [--min-seconds 3]
"""

import argparse
import json
import statistics
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper


def model(steps, inputs, hidden):
    rng = np.random.default_rng(7)
    scale = 1.0 / np.sqrt(inputs + hidden)
    w = (rng.uniform(-1, 1, (1, 4 * hidden, inputs)) * scale).astype(np.float32)
    r = (rng.uniform(-1, 1, (1, 4 * hidden, hidden)) * scale).astype(np.float32)
    b = (rng.uniform(-0.1, 0.1, (1, 8 * hidden))).astype(np.float32)
    node = helper.make_node(
        "LSTM", ["X", "W", "R", "B"], ["Y", "Y_h", "Y_c"], hidden_size=hidden
    )
    graph = helper.make_graph(
        [node],
        "lstm",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [steps, "batch", inputs])],
        [
            helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, [1, "batch", hidden]),
        ],
        initializer=[
            numpy_helper.from_array(w, "W"),
            numpy_helper.from_array(r, "R"),
            numpy_helper.from_array(b, "B"),
        ],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m.SerializeToString()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--batches", default="1,64,1024,10000")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--input", type=int, default=8)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--min-seconds", type=float, default=3.0)
    a = p.parse_args()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(
        model(a.steps, a.input, a.hidden), options, providers=["CPUExecutionProvider"]
    )
    for batch in [int(b) for b in a.batches.split(",")]:
        x = np.random.default_rng(batch).standard_normal(
            (a.steps, batch, a.input), dtype=np.float32
        )
        session.run(["Y_h"], {"X": x})  # warm-up
        times = []
        started = time.perf_counter()
        while time.perf_counter() - started < a.min_seconds or len(times) < 5:
            t0 = time.perf_counter()
            session.run(["Y_h"], {"X": x})
            times.append(time.perf_counter() - t0)
        print(
            json.dumps(
                {
                    "batch": batch,
                    "seconds": statistics.median(times),
                    "runs": len(times),
                    "onnxruntime": ort.__version__,
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
