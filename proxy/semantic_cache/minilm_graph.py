"""all-MiniLM-L6-v2 as an ONNX graph, built from the publisher's own weights at load.

The model's files hold weights only (``model.safetensors`` carries no code); the computation
is BERT's, written here with the ``onnx`` package's helpers so that onnxruntime can run it:
embeddings (word + position + token type 0) and a layer norm, six encoder layers (self-
attention with a padding mask, GELU feed-forward, post-layer-norm residuals), then mean
pooling over the real tokens. L2 normalisation is left to the caller.

No exported ``.onnx`` file is read or written: a third party's export has no publisher's
hash, and building the graph from the verified weights keeps one set of files to trust.
``bench/minilm_reference.py`` runs the same computation with numpy; the tests hold the two
to a cosine of 0.999.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

# The opset of LayerNormalization (17) and Split's num_outputs (18).
OPSET = 18
IR_VERSION = 9


class _GraphBuilder:
    def __init__(self) -> None:
        from onnx import helper, numpy_helper

        self._helper = helper
        self._numpy_helper = numpy_helper
        self.nodes: list = []
        self.initializers: list = []
        self._count = 0

    def constant(self, name: str, value) -> str:
        # np.array, not ascontiguousarray: a scalar must stay 0-dimensional.
        array = np.array(value, order="C")
        self.initializers.append(self._numpy_helper.from_array(array, name))
        return name

    def op(self, kind: str, inputs: list[str], outputs: int = 1, **attributes) -> list[str]:
        self._count += 1
        names = [f"{kind.lower()}_{self._count}_{index}" for index in range(outputs)]
        self.nodes.append(self._helper.make_node(kind, inputs, names, **attributes))
        return names

    def one(self, kind: str, inputs: list[str], **attributes) -> str:
        return self.op(kind, inputs, **attributes)[0]


def build_model(weights: Mapping[str, np.ndarray], config: Mapping[str, object]):
    """The ``onnx.ModelProto`` of the encoder with mean pooling.

    Inputs ``input_ids`` and ``attention_mask`` (int64, batch x tokens); output ``pooled``
    (float32, batch x hidden), not normalised.
    """
    from onnx import TensorProto, helper

    hidden = int(config["hidden_size"])
    heads = int(config["num_attention_heads"])
    head_dim = hidden // heads
    eps = float(config["layer_norm_eps"])
    g = _GraphBuilder()

    def f32(value) -> np.ndarray:
        return np.asarray(value, dtype=np.float32)

    def tensor(name: str, transpose: bool = False) -> str:
        value = f32(weights[name])
        return g.constant(name, value.T if transpose else value)

    def dense(x: str, prefix: str) -> str:
        # PyTorch's Linear stores (out, in): transposed once here, not at every call.
        product = g.one("MatMul", [x, tensor(prefix + ".weight", transpose=True)])
        return g.one("Add", [product, tensor(prefix + ".bias")])

    def layer_norm(x: str, prefix: str) -> str:
        return g.one(
            "LayerNormalization",
            [x, tensor(prefix + ".weight"), tensor(prefix + ".bias")],
            axis=-1,
            epsilon=eps,
        )

    one = g.constant("one", f32(1.0))
    # Embeddings: positions 0..length-1 are gathered from the table, token type is always 0.
    words = g.one("Gather", [tensor("embeddings.word_embeddings.weight"), "input_ids"])
    length = g.one("Gather", [g.one("Shape", ["input_ids"]), g.constant("int_1", np.int64(1))])
    positions = g.one(
        "Range", [g.constant("zero_i", np.int64(0)), length, g.constant("step_1", np.int64(1))]
    )
    x = g.one(
        "Add",
        [words, g.one("Gather", [tensor("embeddings.position_embeddings.weight"), positions])],
    )
    token_type = g.constant(
        "token_type_0", f32(weights["embeddings.token_type_embeddings.weight"][0])
    )
    x = layer_norm(g.one("Add", [x, token_type]), "embeddings.LayerNorm")

    mask = g.one("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    # Padding positions get -1e9 before the softmax: they receive no attention.
    blocked = g.one("Mul", [g.one("Sub", [one, mask]), g.constant("blocked", f32(-1e9))])
    attention_bias = g.one("Unsqueeze", [blocked, g.constant("axes_1_2", np.array([1, 2]))])
    split_heads = g.constant("split_heads", np.array([0, 0, heads, head_dim]))
    merge_heads = g.constant("merge_heads", np.array([0, 0, hidden]))
    scale = g.constant("scale", f32(1.0 / math.sqrt(head_dim)))
    half = g.constant("half", f32(0.5))
    inverse_sqrt2 = g.constant("inverse_sqrt2", f32(1.0 / math.sqrt(2.0)))

    for layer in range(int(config["num_hidden_layers"])):
        p = f"encoder.layer.{layer}."
        # Query, key and value in one product, then split.
        fused_w = np.concatenate(
            [f32(weights[f"{p}attention.self.{n}.weight"]) for n in ("query", "key", "value")]
        ).T
        fused_b = np.concatenate(
            [f32(weights[f"{p}attention.self.{n}.bias"]) for n in ("query", "key", "value")]
        )
        qkv = g.one(
            "Add",
            [
                g.one("MatMul", [x, g.constant(p + "qkv.weight", fused_w)]),
                g.constant(p + "qkv.bias", fused_b),
            ],
        )
        q, k, v = (
            g.one("Reshape", [part, split_heads])
            for part in g.op("Split", [qkv], 3, axis=-1, num_outputs=3)
        )
        q = g.one("Transpose", [q], perm=[0, 2, 1, 3])
        k = g.one("Transpose", [k], perm=[0, 2, 3, 1])
        v = g.one("Transpose", [v], perm=[0, 2, 1, 3])
        scores = g.one("Add", [g.one("Mul", [g.one("MatMul", [q, k]), scale]), attention_bias])
        context = g.one("MatMul", [g.one("Softmax", [scores], axis=-1), v])
        context = g.one("Reshape", [g.one("Transpose", [context], perm=[0, 2, 1, 3]), merge_heads])
        attended = g.one("Add", [dense(context, p + "attention.output.dense"), x])
        x = layer_norm(attended, p + "attention.output.LayerNorm")
        # BERT's GELU is the exact one: x * (1 + erf(x / sqrt 2)) / 2.
        inner = dense(x, p + "intermediate.dense")
        erf = g.one("Erf", [g.one("Mul", [inner, inverse_sqrt2])])
        gelu = g.one("Mul", [g.one("Mul", [inner, g.one("Add", [erf, one])]), half])
        x = layer_norm(g.one("Add", [dense(gelu, p + "output.dense"), x]), p + "output.LayerNorm")

    # Mean over the real tokens only.
    token_mask = g.one("Unsqueeze", [mask, g.constant("axes_2", np.array([2]))])
    axis_tokens = g.constant("axes_tokens", np.array([1]))
    summed = g.one("ReduceSum", [g.one("Mul", [x, token_mask]), axis_tokens], keepdims=0)
    counts = g.one("ReduceSum", [token_mask, axis_tokens], keepdims=0)
    counts = g.one("Max", [counts, g.constant("tiny", f32(1e-9))])
    g.nodes.append(helper.make_node("Div", [summed, counts], ["pooled"]))

    graph = helper.make_graph(
        g.nodes,
        "all-MiniLM-L6-v2",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "tokens"]),
        ],
        [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["batch", hidden])],
        initializer=g.initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    return model
