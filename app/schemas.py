"""The API's request and response bodies (pydantic), which are also its OpenAPI documentation."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Loss = Literal["cross_entropy", "mse", "logit"]


class ErrorBody(BaseModel):
    """Every 4xx answer: a sentence a person understands (and, for validation, the raw field errors)."""

    detail: str = Field(examples=["There is no model called 'resnet'. The models here are: mnist-lenet."])
    errors: list[dict[str, Any]] | None = None


class Tensor(BaseModel):
    """A tensor, no batch dimension: values flat in row-major order, or base64 little-endian bytes."""

    shape: list[int] = Field(examples=[[6, 28, 28]])
    dtype: Literal["float32", "float16"] = "float32"
    encoding: Literal["json", "base64"] | None = None
    data: list[float | None] | str = Field(description="flat values (null where not finite), or base64")


class InputInfo(BaseModel):
    channels: int
    height: int
    width: int
    mean: list[float]
    std: list[float]


class ModelSummary(BaseModel):
    id: str = Field(examples=["mnist-lenet"])
    name: str
    description: str
    dataset: str
    classes: list[str]
    input: InputInfo
    parameter_count: int
    test_accuracy: float | None = Field(description="measured on held-out data, as a fraction (0.981)")


class ModelList(BaseModel):
    models: list[ModelSummary]


class LayerInfo(BaseModel):
    name: str = Field(examples=["conv1"])
    type: str = Field(examples=["conv2d"])
    inputs: list[str] = Field(examples=[["input"]], description='"input" or earlier layer names')
    output_shape: list[int] = Field(examples=[[6, 28, 28]])
    attributes: dict[str, Any] = Field(examples=[{"kernel_size": [5, 5], "stride": [1, 1]}])
    parameters: dict[str, list[int]] = Field(examples=[{"weight": [6, 1, 5, 5], "bias": [6]}])
    buffers: dict[str, list[int]] = Field(default_factory=dict)


class ModelDetail(ModelSummary):
    layers: list[LayerInfo]


class Weights(BaseModel):
    """A layer's parameters in PyTorch's layout, and any buffer needed to re-run it (batch norm)."""

    model_config = ConfigDict(extra="allow")
    layer: str
    weight: Tensor | None
    bias: Tensor | None
    running_mean: Tensor | None = None
    running_var: Tensor | None = None


class SampleInfo(BaseModel):
    id: str = Field(examples=["test-00042"])
    label: int
    label_name: str
    url: str


class SampleList(BaseModel):
    samples: list[SampleInfo]


class Options(BaseModel):
    """What to send back; the same keys work as query parameters and multipart form fields."""

    model_config = ConfigDict(extra="forbid")
    layers: list[str] | None = Field(None, description="only these layers (default: all)")
    encoding: Literal["json", "base64"] = "json"
    dtype: Literal["float32", "float16"] = Field("float32", description="float16 needs encoding=base64")


class GradientOptions(Options):
    target: int | None = Field(None, description="class index (default: the predicted class)")
    loss: Loss = "cross_entropy"

    @field_validator("target", mode="before")
    @classmethod
    def _not_a_bool(cls, value: Any) -> Any:
        """pydantic would read true as class 1; a class index is a number."""
        if isinstance(value, bool):
            raise ValueError("a class index is a whole number, not true or false")
        return value


class ImageSource(BaseModel):
    """Exactly one of: an image as a data URL, a shipped sample id, or a ready input tensor."""

    image: str | None = Field(None, description="data:image/png;base64,...")
    sample: str | None = Field(None, examples=["test-00042"])
    tensor: Tensor | None = Field(None, description="[C, H, W], normalised, as `input` is returned")


class ForwardRequest(ImageSource, Options):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"sample": "test-00000"}]})


class BackwardRequest(ImageSource, GradientOptions):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"sample": "test-00000", "target": 7, "loss": "cross_entropy"}]})


class Prediction(BaseModel):
    index: int
    label: str
    probabilities: list[float] = Field(description="softmax of the logits, one per class")
    logits: list[float] = Field(description="the model's output before softmax")


class ForwardResponse(BaseModel):
    model: str
    input: Tensor
    prediction: Prediction
    layers: dict[str, Tensor]


class LayerGradients(BaseModel):
    activation_gradient: Tensor
    weight_gradient: Tensor | None
    bias_gradient: Tensor | None


class BackwardResponse(BaseModel):
    model: str
    loss: float
    loss_function: Loss
    target: int
    prediction: Prediction
    input: Tensor
    input_gradient: Tensor
    layers: dict[str, LayerGradients]
