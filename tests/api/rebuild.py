"""Plain-PyTorch references for the API tests, built from what the API serves and nothing else.

No import of `models/` or `app/`: a model is rebuilt from `GET /api/models/{id}` (the layer list)
and `GET /api/models/{id}/layers/{layer}/weights`, and run by a small interpreter that maps the
served layer types onto torch.nn.functional. Tensors are decoded from the wire here too, with
numpy, so that the API's own codec is checked rather than trusted.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

MODELS = ("mnist-lenet", "fashion-tinyvgg")
LOSSES = ("cross_entropy", "mse", "logit")


def tensor(obj: Mapping[str, Any]) -> Tensor:
    """A float32 torch tensor from the API's Tensor object (JSON list or base64 little-endian)."""
    shape = list(obj["shape"])
    count = math.prod(shape)
    if obj.get("encoding") == "base64":
        width, dtype = {"float32": (4, "<f4"), "float16": (2, "<f2")}[obj["dtype"]]
        raw = base64.b64decode(obj["data"], validate=True)
        assert len(raw) == count * width, f"{len(raw)} bytes for shape {shape} in {obj['dtype']}"
        values = np.frombuffer(raw, dtype=dtype).astype(np.float32)
    else:
        assert obj["dtype"] == "float32"
        assert isinstance(obj["data"], list) and len(obj["data"]) == count
        values = np.array(obj["data"], dtype=np.float64).astype(np.float32)  # float32 values, exactly
    return torch.from_numpy(values.reshape(shape).copy())


def to_wire(t: Tensor) -> dict[str, Any]:
    """A Tensor object as a client sends it: base64 little-endian float32."""
    raw = t.detach().to(torch.float32).contiguous().numpy().astype("<f4").tobytes()
    return {"shape": list(t.shape), "dtype": "float32", "encoding": "base64", "data": base64.b64encode(raw).decode()}


def plain_loss(logits: Tensor, target: int, loss: str) -> Tensor:
    """The issue's definitions, on logits [1, K]."""
    if loss == "cross_entropy":
        return F.cross_entropy(logits, torch.tensor([target]))
    if loss == "mse":
        one_hot = torch.zeros_like(logits)
        one_hot[0, target] = 1.0
        return ((logits.softmax(1) - one_hot) ** 2).mean()
    assert loss == "logit"
    return logits[0, target]


def _pair(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def apply(kind: str, attrs: Mapping[str, Any], args: list[Tensor], p: Mapping[str, Tensor]) -> Tensor:
    """One served layer, in torch.nn.functional, with the served attributes (PyTorch's names)."""
    assert args, f"a {kind} layer with no inputs"
    x = args[0]
    a = {k: _pair(v) for k, v in attrs.items()}
    if kind == "conv2d":
        padding = a.get("padding", 0)
        mode = a.get("padding_mode", "zeros")
        if mode != "zeros":
            ph, pw = padding if isinstance(padding, tuple) else (padding, padding)
            x = F.pad(x, (pw, pw, ph, ph), mode=mode)
            padding = 0
        return F.conv2d(x, p["weight"], p.get("bias"), a.get("stride", 1), padding, a.get("dilation", 1),
                        a.get("groups", 1))
    if kind == "linear":
        return F.linear(x, p["weight"], p.get("bias"))
    if kind == "relu":
        return F.relu(x)
    if kind == "leaky_relu":
        return F.leaky_relu(x, a.get("negative_slope", 0.01))
    if kind == "sigmoid":
        return torch.sigmoid(x)
    if kind == "tanh":
        return torch.tanh(x)
    if kind == "max_pool2d":
        return F.max_pool2d(x, a["kernel_size"], a.get("stride") or a["kernel_size"], a.get("padding", 0),
                            a.get("dilation", 1), ceil_mode=a.get("ceil_mode", False))
    if kind == "avg_pool2d":
        return F.avg_pool2d(x, a["kernel_size"], a.get("stride") or a["kernel_size"], a.get("padding", 0),
                            a.get("ceil_mode", False), a.get("count_include_pad", True), a.get("divisor_override"))
    if kind == "adaptive_avg_pool2d":
        return F.adaptive_avg_pool2d(x, a["output_size"])
    if kind == "batch_norm2d":
        return F.batch_norm(x, p.get("running_mean"), p.get("running_var"), p.get("weight"), p.get("bias"),
                            training=False, eps=a.get("eps", 1e-5))
    if kind == "dropout":
        return x  # the API runs models in eval mode
    if kind == "flatten":
        return torch.flatten(x, a.get("start_dim", 1), a.get("end_dim", -1))
    if kind == "add":
        out = args[0]
        for other in args[1:]:
            out = out + other
        return out
    if kind == "cat":
        return torch.cat(args, a.get("dim", 1))
    if kind == "softmax":
        return F.softmax(x, a.get("dim", -1))
    raise AssertionError(f"the rebuild does not know layer type {kind!r}: extend tests/api/rebuild.py")


@dataclass
class Rebuilt:
    """A model as the API describes it: its layer list and every layer's weights, as leaf tensors."""

    id: str
    detail: dict[str, Any]
    params: dict[str, dict[str, Tensor]]  # layer -> {"weight", "bias", "running_mean", ...}

    @property
    def layers(self) -> list[dict[str, Any]]:
        return list(self.detail["layers"])

    @property
    def names(self) -> list[str]:
        return [layer["name"] for layer in self.detail["layers"]]

    @property
    def classes(self) -> list[str]:
        return list(self.detail["classes"])

    def run(self, x: Tensor, params: Mapping[str, Mapping[str, Tensor]] | None = None) -> dict[str, Tensor]:
        """Every layer's output for x [1, C, H, W] (batch dim kept), in execution order."""
        params = self.params if params is None else params
        values: dict[str, Tensor] = {"input": x}
        outputs: dict[str, Tensor] = {}
        for layer in self.layers:
            args = [values[name] for name in layer["inputs"]]
            out = apply(layer["type"], layer["attributes"], args, params.get(layer["name"], {}))
            values[layer["name"]] = outputs[layer["name"]] = out
        return outputs

    def logits(self, outputs: Mapping[str, Tensor]) -> Tensor:
        """The model's output [1, K]: the last layer's."""
        return outputs[self.names[-1]]

    def backward(self, x: Tensor, target: int | None, loss: str) -> dict[str, Any]:
        """torch.autograd.grad of the loss for every input, layer output and parameter."""
        x = x.detach().clone().requires_grad_(True)
        params = {(layer, key): t.detach().clone().requires_grad_(True)
                  for layer, group in self.params.items() for key, t in group.items()
                  if key in ("weight", "bias")}
        with_leaves = {layer: dict(group) for layer, group in self.params.items()}
        for (layer, key), leaf in params.items():
            with_leaves[layer][key] = leaf
        outputs = self.run(x, with_leaves)
        logits = self.logits(outputs)
        chosen = int(logits.argmax(1)) if target is None else target
        value = plain_loss(logits, chosen, loss)
        wrt = [x, *outputs.values(), *params.values()]
        found = torch.autograd.grad(value, wrt, allow_unused=True)
        grads = [torch.zeros_like(t) if g is None else g for t, g in zip(wrt, found)]
        n = len(outputs)
        return {
            "loss": float(value.detach()), "target": chosen, "logits": logits.detach(),
            "input_gradient": grads[0][0],
            "activation_gradients": {name: g[0] for name, g in zip(outputs, grads[1:1 + n])},
            "parameter_gradients": {key: g for key, g in zip(params, grads[1 + n:])},
        }


def rebuild(http: Any, model_id: str) -> Rebuilt:
    """The model `model_id`, from the layer list and the weights endpoint alone."""
    response = http.get(f"/api/models/{model_id}")
    assert response.status_code == 200, response.text
    detail = response.json()
    params: dict[str, dict[str, Tensor]] = {}
    for layer in detail["layers"]:
        if not layer["parameters"] and not layer.get("buffers"):
            continue
        got = http.get(f"/api/models/{model_id}/layers/{layer['name']}/weights")
        assert got.status_code == 200, got.text
        body = got.json()
        assert body["layer"] == layer["name"]
        group = {}
        for key in (*layer["parameters"], *layer.get("buffers", {})):
            group[key] = tensor(body[key])
        params[layer["name"]] = group
    return Rebuilt(model_id, detail, params)


def plain_builtin(model_id: str) -> nn.Module:
    """A built-in model built from its card's factory and safetensors file alone, without ConvScope."""
    import importlib
    import json

    from safetensors.torch import load_file

    from tests import ROOT
    card = json.loads((ROOT / "models" / f"{model_id}.json").read_text())
    module_name, name = card["architecture"]["factory"].split(":")
    net: nn.Module = getattr(importlib.import_module(module_name), name)(**card["architecture"]["kwargs"])
    net.load_state_dict(load_file(ROOT / "models" / card["weights"]))
    return net.eval()
