"""Tensors to and from the API's Tensor object: {"shape", "dtype", "data"} as a JSON list or base64."""

import base64
import binascii
import math
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from convscope.errors import InvalidRequest

Encoding = Literal["json", "base64"]
WireDtype = Literal["float32", "float16"]
ENCODINGS: tuple[Encoding, ...] = ("json", "base64")
DTYPES: tuple[WireDtype, ...] = ("float32", "float16")


def encode(tensor: Tensor, encoding: Encoding = "json", dtype: WireDtype = "float32") -> dict[str, Any]:
    """A Tensor object for the API; float16 only with base64 (JSON numbers gain nothing from it)."""
    shape = list(tensor.shape)
    if encoding == "json":
        # float32 values become the nearest double; JSON has no NaN or infinity, so those become null.
        data: list[float | None] = tensor.detach().flatten().tolist()
        if not bool(torch.isfinite(tensor).all()):
            data = [v if v is not None and math.isfinite(v) else None for v in data]
        return {"shape": shape, "dtype": "float32", "data": data}
    array = tensor.detach().to(torch.float16 if dtype == "float16" else torch.float32).contiguous().numpy()
    raw = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
    return {"shape": shape, "dtype": dtype, "encoding": "base64", "data": base64.b64encode(raw).decode("ascii")}


def decode(obj: dict[str, Any]) -> Tensor:
    """A float32 tensor from a Tensor object sent by a client; raises InvalidRequest with a sentence."""
    shape = obj.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                              for d in shape):
        raise InvalidRequest("The tensor's 'shape' must be a list of non-negative whole numbers, such as [1, 28, 28].")
    count = math.prod(shape)
    data = obj.get("data")
    dtype = obj.get("dtype", "float32")
    if dtype not in DTYPES:
        raise InvalidRequest(f"The tensor's dtype must be one of {', '.join(DTYPES)}; got {dtype!r}.")
    if obj.get("encoding", "json") == "base64" or isinstance(data, str):
        if not isinstance(data, str):
            raise InvalidRequest("A base64 tensor's 'data' must be a string.")
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequest("The tensor's 'data' is not valid base64.") from None
        width = 2 if dtype == "float16" else 4
        if len(raw) != count * width:
            raise InvalidRequest(f"The tensor's data holds {len(raw) // width} {dtype} values, "
                                 f"but its shape {shape} needs {count}.")
        values = np.frombuffer(raw, dtype="<f2" if dtype == "float16" else "<f4").astype(np.float32)
        tensor = torch.from_numpy(values.copy())
    else:
        if not isinstance(data, list):
            raise InvalidRequest("The tensor's 'data' must be a flat list of numbers (or a base64 string).")
        if len(data) != count:
            raise InvalidRequest(f"The tensor's data has {len(data)} values, but its shape {shape} needs {count}.")
        try:
            tensor = torch.tensor(data, dtype=torch.float32)
        except (TypeError, ValueError):
            raise InvalidRequest("The tensor's 'data' must contain only numbers.") from None
        if tensor.dim() != 1:
            raise InvalidRequest("The tensor's 'data' must be flat (row-major), not nested lists.")
    if not bool(torch.isfinite(tensor).all()):
        raise InvalidRequest("The tensor contains NaN or infinite values; every value must be a finite number.")
    return tensor.reshape(shape)
