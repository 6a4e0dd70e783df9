"""FLOPs of an ONNX graph for one concrete input shape: 2 x MACs of its Conv, ConvTranspose, MatMul and Gemm nodes.

The exported graph has a dynamic input (N, H, W, 3); the input shape is fixed, ONNX shape inference
propagates it, and each node's MACs come from its output shape and weight shape. Elementwise work
(BatchNorm folded into the convolutions, ReLU, pooling, concatenation) is left out: it is a few percent
of an Inception v3 and does not run on the FMA units the peak is counted for.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path


def _dims(vi) -> list[int] | None:
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return None
    out = []
    for d in t.shape.dim:
        if not d.HasField("dim_value"):
            return None
        out.append(int(d.dim_value))
    return out


@lru_cache(maxsize=4)
def _load(path: str):
    import onnx

    return onnx.load(path, load_external_data=False)


@lru_cache(maxsize=256)
def graph_flops(path: str, height: int, width: int) -> float:
    """FLOPs of one (1, height, width, 3) input through the graph at `path` (linear in the batch size)."""
    import onnx
    from onnx import numpy_helper, shape_inference

    proto = onnx.ModelProto()
    proto.CopyFrom(_load(str(Path(path))))
    graph = proto.graph
    inits = {i.name: list(i.dims) for i in graph.initializer}
    inp = next(i for i in graph.input if i.name not in inits)
    for d, v in zip(inp.type.tensor_type.shape.dim, (1, height, width, 3), strict=True):
        d.ClearField("dim_param")
        d.dim_value = v
    del graph.value_info[:]
    inferred = shape_inference.infer_shapes(proto, data_prop=True)
    shapes = {vi.name: _dims(vi) for vi in list(inferred.graph.value_info) + list(inferred.graph.output)}
    shapes.update({k: v for k, v in inits.items()})
    consts = {}
    for n in graph.node:  # weights may come through Constant nodes instead of initializers
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    consts[n.output[0]] = list(numpy_helper.to_array(a.t).shape)
    shapes.update(consts)
    total = 0.0
    missing = 0
    for n in graph.node:
        if n.op_type in ("Conv", "ConvTranspose"):
            out, w = shapes.get(n.output[0]), shapes.get(n.input[1])
            if not out or not w:
                missing += 1
                continue
            group = next((a.i for a in n.attribute if a.name == "group"), 1)
            # weight (Cout, Cin/group, kh, kw); every output element costs Cin/group * kh * kw MACs
            per_out = math.prod(w[1:]) if n.op_type == "Conv" else w[0] // group * math.prod(w[2:])
            total += 2.0 * math.prod(out) * per_out
        elif n.op_type in ("MatMul", "Gemm"):
            a, out = shapes.get(n.input[0]), shapes.get(n.output[0])
            if not a or not out:
                missing += 1
                continue
            k = a[-1] if not (n.op_type == "Gemm" and any(x.name == "transA" and x.i for x in n.attribute)) else a[0]
            total += 2.0 * math.prod(out) * k
    if missing:
        raise ValueError(f"{path}: {missing} Conv/MatMul nodes without an inferred shape at {height}x{width}")
    return total


def shapes_flops(path: str, shapes: list[tuple[int, int, int]] | list[list[int]]) -> float:
    """Total FLOPs of a list of (N, H, W) model calls."""
    return sum(n * graph_flops(path, h, w) for n, h, w in shapes)
