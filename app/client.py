"""A thin Python client for ConvScope's REST API: every answer's Tensors come back as torch.Tensors.

    with ConvScopeClient("http://127.0.0.1:8000") as cs:
        result = cs.forward("mnist-lenet", Sample("test-00000"))   # or a path, bytes, PIL image, tensor
        result.prediction.label, result.layers["conv1"].shape          # '6', torch.Size([6, 28, 28])

        brief = cs.forward("mnist-lenet", Sample("test-00000"), summary=True)  # large models: no full tensors
        brief.summaries["conv1"].thumbnail.shape                       # torch.Size([6, 8, 8])
        cs.layer("mnist-lenet", brief.run, "conv1")                    # the full output, while the server keeps it
"""

import base64
import io
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self, cast
from urllib.parse import quote

import httpx
import numpy as np
import torch
from PIL import Image

from convscope.optimizers import OptimizerName as Optimizer
from convscope.optimizers import ParameterStep

Encoding = Literal["json", "base64"]
Loss = Literal["cross_entropy", "mse", "logit"]


@dataclass(frozen=True)
class Sample:
    """One of a model's shipped samples, by id (see `ConvScopeClient.samples`), as an image source."""

    id: str


ImageInput = str | Path | bytes | Image.Image | torch.Tensor | Sample


class ConvScopeAPIError(Exception):
    """The server answered 4xx or 5xx; the message is its `detail` sentence."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


class NotFoundError(ConvScopeAPIError):
    """404: unknown model, layer or sample (or a layer without weights, or a run no longer kept)."""


class InvalidRequestError(ConvScopeAPIError):
    """422: an image, tensor or parameter the server cannot use."""


class TooLargeError(ConvScopeAPIError):
    """413: the upload or the image is over the server's size limit."""


class BusyError(ConvScopeAPIError):
    """429: the server is at its limit of waiting requests (or training runs); try again shortly."""


ERRORS: dict[int, type[ConvScopeAPIError]] = {404: NotFoundError, 413: TooLargeError, 422: InvalidRequestError,
                                              429: BusyError}


@dataclass(frozen=True)
class Prediction:
    """The predicted class, and the softmax probabilities and raw logits of every class ([K] each)."""

    index: int
    label: str
    probabilities: torch.Tensor
    logits: torch.Tensor


@dataclass(frozen=True)
class LayerSummary:
    """A layer's output in brief: its shape, value statistics (None where not finite; std is the
    population one) and a thumbnail ([C, h, w] with h, w <= the thumbnail side; [N] up to 1024 values)."""

    shape: list[int]
    min: float | None
    max: float | None
    mean: float | None
    std: float | None
    thumbnail: torch.Tensor


@dataclass(frozen=True)
class ForwardResult:
    """The input the model consumed ([C, H, W]), its prediction, and each layer's output by name.

    With `summary=True`, `layers` is empty and `summaries` holds each layer in brief instead; `run` is
    the id by which `ConvScopeClient.layer` fetches a full output while the server keeps the run
    (None when it keeps none)."""

    input: torch.Tensor
    prediction: Prediction
    layers: dict[str, torch.Tensor]
    summaries: dict[str, LayerSummary] = field(default_factory=dict)
    run: str | None = None


@dataclass(frozen=True)
class BackwardResult:
    """The loss for `target` and its gradients: input, each layer's output, each weight and bias."""

    loss: float
    target: int
    prediction: Prediction
    input: torch.Tensor
    input_gradient: torch.Tensor
    activation_gradients: dict[str, torch.Tensor]
    weight_gradients: dict[str, torch.Tensor]
    bias_gradients: dict[str, torch.Tensor]
    # With summary=True: every layer's activation gradient in brief; the dicts above then hold only
    # the layers asked for by name.
    summaries: dict[str, LayerSummary] = field(default_factory=dict)


@dataclass(frozen=True)
class AttributionResult:
    """An attribution map for `target`'s score: `attribution` [C, H, W] at the input's resolution; for
    layer methods (grad_cam, guided_grad_cam) also the `layer` and its own-resolution map."""

    method: str
    target: int
    label: str
    score: float
    prediction: Prediction
    input: torch.Tensor
    attribution: torch.Tensor
    layer: str | None
    layer_attribution: torch.Tensor | None
    options: dict[str, Any]


@dataclass(frozen=True)
class StepResult:
    """One step of a fresh optimizer on this image's gradients (the served model does not change):
    the loss before and after, and per layer, per parameter name, what the step did."""

    optimizer: str
    lr: float
    target: int
    loss: float
    loss_after: float
    prediction: Prediction
    prediction_after: Prediction
    layers: dict[str, dict[str, ParameterStep]]


def decode(obj: dict[str, Any]) -> torch.Tensor:
    """A float32 torch.Tensor from the API's Tensor object (JSON list or base64 little-endian)."""
    if obj.get("encoding") == "base64":
        wire = "<f2" if obj.get("dtype") == "float16" else "<f4"
        array = np.frombuffer(base64.b64decode(obj["data"]), dtype=wire).astype(np.float32)
    else:  # JSON has no NaN or infinity: the server sends null for them
        array = np.array([np.nan if v is None else v for v in obj["data"]], dtype=np.float32)
    return torch.from_numpy(array).reshape(obj["shape"])


def encode(tensor: torch.Tensor) -> dict[str, Any]:
    """The API's Tensor object (base64 little-endian float32) for a [C, H, W] or [1, C, H, W] tensor."""
    x = tensor.detach().cpu().to(torch.float32)
    x = x[0] if x.dim() == 4 and x.shape[0] == 1 else x
    raw = x.contiguous().numpy().astype("<f4", copy=False).tobytes()
    return {"shape": list(x.shape), "dtype": "float32", "encoding": "base64", "data": base64.b64encode(raw).decode()}


def _summaries(body: dict[str, Any]) -> dict[str, LayerSummary]:
    """A summary answer's `summaries`, thumbnails decoded; empty when the answer has none."""
    return {name: LayerSummary(s["shape"], s["min"], s["max"], s["mean"], s["std"], decode(s["thumbnail"]))
            for name, s in (body.get("summaries") or {}).items()}


def _prediction(obj: dict[str, Any]) -> Prediction:
    return Prediction(obj["index"], obj["label"], torch.tensor(obj["probabilities"]), torch.tensor(obj["logits"]))


class ConvScopeClient:
    """ConvScope's API over HTTP (httpx); use it as a context manager, or call `close()`."""

    def __init__(self, base_url: str = "http://127.0.0.1:8000", timeout: float = 30.0,
                 encoding: Encoding = "base64") -> None:
        self.encoding = encoding  # how Tensors travel from the server: base64 is ~3× smaller and faster
        self._http = httpx.Client(base_url=base_url.rstrip("/") + "/api", timeout=timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self._http.request(method, path, **kwargs)
        if response.is_error:
            try:
                detail = str(response.json()["detail"])
            except (ValueError, KeyError, TypeError):
                detail = response.text or response.reason_phrase
            raise ERRORS.get(response.status_code, ConvScopeAPIError)(response.status_code, detail)
        return response

    def _get(self, path: str, **params: str) -> dict[str, Any]:
        return cast(dict[str, Any], self._send("GET", path, params=params).json())

    def health(self) -> dict[str, Any]:
        """`{"status": "ok"}` once the server has loaded its models."""
        return self._get("/health")

    def optimizers(self) -> list[dict[str, Any]]:
        """Every optimizer the step and the training lab can use (GET /api/optimizers)."""
        return cast(list[dict[str, Any]], self._get("/optimizers")["optimizers"])

    def layer_types(self) -> list[dict[str, Any]]:
        """Every layer type the engine names layers by (GET /api/layer-types)."""
        return cast(list[dict[str, Any]], self._get("/layer-types")["layer_types"])

    def models(self) -> list[dict[str, Any]]:
        """Every served model's summary: id, classes, input size and normalisation, accuracy."""
        return cast(list[dict[str, Any]], self._get("/models")["models"])

    def model(self, model: str) -> dict[str, Any]:
        """A model's summary plus its `layers` in execution order (name, type, inputs, output_shape, ...)."""
        return self._get(f"/models/{quote(model, safe='')}")

    def weights(self, model: str, layer: str) -> dict[str, torch.Tensor]:
        """A layer's `weight`, `bias` (if any) and buffers (`running_mean`, ...) in PyTorch's layout."""
        body = self._get(f"/models/{quote(model, safe='')}/layers/{quote(layer, safe='')}/weights",
                         encoding=self.encoding)
        return {key: decode(value) for key, value in body.items() if isinstance(value, dict)}

    def samples(self, model: str) -> list[dict[str, Any]]:
        """The model's shipped samples: `id`, true `label`, `label_name` and image `url`."""
        return cast(list[dict[str, Any]], self._get(f"/models/{quote(model, safe='')}/samples")["samples"])

    def sample_image(self, model: str, sample: str) -> bytes:
        """A shipped sample's PNG bytes."""
        return self._send("GET", f"/models/{quote(model, safe='')}/samples/{quote(sample, safe='')}.png").content

    def _infer(self, model: str, step: str, image: ImageInput, options: dict[str, Any]) -> Any:
        """POST one image to forward, backward, step or attributions: files go as multipart, samples and
        tensors as JSON."""
        options = {key: value for key, value in options.items() if value is not None} | {"encoding": self.encoding}
        path = f"/models/{quote(model, safe='')}/{step}"
        if isinstance(image, Sample | torch.Tensor):
            source = {"sample": image.id} if isinstance(image, Sample) else {"tensor": encode(image)}
            return self._send("POST", path, json=source | options).json()
        if isinstance(image, Image.Image):
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            data = buffer.getvalue()
        else:
            data = image if isinstance(image, bytes) else Path(image).read_bytes()
        form = {key: ",".join(map(str, value)) if isinstance(value, list) else
                str(value).lower() if isinstance(value, bool) else str(value) for key, value in options.items()}
        return self._send("POST", path, files={"image": ("image", data)}, data=form).json()

    def forward(self, model: str, image: ImageInput, layers: list[str] | None = None, summary: bool = False,
                thumbnail: int | None = None) -> ForwardResult:
        """Run one image through `model`: the input it consumed, its prediction, every (or each named) layer.

        `summary=True` (for large models) brings each layer's summary and thumbnail (side `thumbnail`,
        default 8) instead of its full output, and the `run` id that `layer` fetches full outputs by."""
        body = self._infer(model, "forward", image,
                           {"layers": layers, "summary": True if summary else None, "thumbnail": thumbnail})
        summaries = _summaries(body)
        return ForwardResult(decode(body["input"]), _prediction(body["prediction"]),
                             {name: decode(t) for name, t in body["layers"].items()}, summaries, body.get("run"))

    def layer(self, model: str, run: str, layer: str) -> torch.Tensor:
        """One layer's full output (`"input"`: the input) from a summary forward's `run`; NotFoundError
        once the server no longer keeps the run (then forward with `layers=[layer]` gives it)."""
        path = f"/models/{quote(model, safe='')}/runs/{quote(run, safe='')}/layers/{quote(layer, safe='')}"
        return decode(self._get(path, encoding=self.encoding)["tensor"])

    def backward(self, model: str, image: ImageInput, target: int | None = None, loss: Loss = "cross_entropy",
                 layers: list[str] | None = None, summary: bool = False, thumbnail: int | None = None) -> BackwardResult:
        """The loss for `target` (default: the predicted class) and its gradient everywhere.

        `summary=True` (for large models) brings every layer's gradient in brief (statistics and a
        thumbnail of side `thumbnail`) and in full only the `layers` named."""
        body = self._infer(model, "backward", image, {"target": target, "loss": loss, "layers": layers,
                                                      "summary": True if summary else None, "thumbnail": thumbnail})
        grads: dict[str, dict[str, Any]] = body["layers"]

        def each(key: str) -> dict[str, torch.Tensor]:
            return {name: decode(g[key]) for name, g in grads.items() if g.get(key) is not None}

        return BackwardResult(float(body["loss"]), int(body["target"]), _prediction(body["prediction"]),
                              decode(body["input"]), decode(body["input_gradient"]), each("activation_gradient"),
                              each("weight_gradient"), each("bias_gradient"), _summaries(body))

    def attribution_methods(self, model: str | None = None) -> list[dict[str, Any]]:
        """Every attribution method: name, summary, whether it needs a layer, and its options (type,
        default, range); with `model`, that model's defaults and usable layers filled in."""
        params = {"model": model} if model is not None else {}
        return cast(list[dict[str, Any]], self._get("/attributions/methods", **params)["methods"])

    def attribute(self, model: str, image: ImageInput, method: str = "grad_cam", target: int | None = None,
                  **options: Any) -> AttributionResult:
        """An attribution map by `method` for `target` (default: the predicted class); the method's own
        options (`layer`, `steps`, `baseline`, `samples`, `stdevs`, `seed`, `window`, `stride`) as keywords."""
        body = self._infer(model, "attributions", image, {"method": method, "target": target, **options})
        raw = body.get("layer_attribution")
        return AttributionResult(body["method"], int(body["target"]), body["label"], float(body["score"]),
                                 _prediction(body["prediction"]), decode(body["input"]), decode(body["attribution"]),
                                 body.get("layer"), None if raw is None else decode(raw), body["options"])

    def step(self, model: str, image: ImageInput, optimizer: Optimizer = "sgd", lr: float | None = None,
             target: int | None = None, loss: Loss = "cross_entropy", layers: list[str] | None = None) -> StepResult:
        """One step of a fresh `optimizer` on this image's gradients, on a private copy of the parameters
        of `layers` (default: every layer with parameters); `lr` defaults to the optimizer's."""
        body = self._infer(model, "step", image, {"optimizer": optimizer, "lr": lr, "target": target, "loss": loss,
                                                  "layers": layers})
        steps = {name: {key: ParameterStep(*(decode(p[k]) for k in ("before", "after", "gradient", "update")))
                        for key, p in params.items()} for name, params in body["layers"].items()}
        return StepResult(body["optimizer"], float(body["lr"]), int(body["target"]), float(body["loss"]),
                          float(body["loss_after"]), _prediction(body["prediction"]),
                          _prediction(body["prediction_after"]), steps)
