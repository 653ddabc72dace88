"""The API's request and response bodies (pydantic), which are also its OpenAPI documentation."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.json_schema import SkipJsonSchema

from convscope.engine.summary import MAX_THUMBNAIL, THUMBNAIL
from convscope.layer_types import Family, View
from convscope.optimizers import MAX_LR, MOMENTUM, OptimizerName, rates

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


class LayerScope(BaseModel):
    module: str = Field(examples=["layer1.0"])
    type: str = Field(examples=["BasicBlock"], description="the module's class name")


class LayerInfo(BaseModel):
    name: str = Field(examples=["conv1"])
    type: str = Field(examples=["conv2d"])
    inputs: list[str] = Field(examples=[["input"]], description='"input" or earlier layer names')
    output_shape: list[int] = Field(examples=[[6, 28, 28]])
    attributes: dict[str, Any] = Field(examples=[{"kernel_size": [5, 5], "stride": [1, 1]}])
    parameters: dict[str, list[int]] = Field(examples=[{"weight": [6, 1, 5, 5], "bias": [6]}])
    buffers: dict[str, list[int]] = Field(default_factory=dict)
    module: str | None = Field(None, examples=["layer1.0.conv1"], description="the module called, if a module call")
    scope: list[LayerScope] = Field(default_factory=list, description=(
        "the modules whose forward made this call, outermost first (the layer's own module left out): "
        "a ResNet block's layers share its entry"))


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
    label: int | None = Field(description="the true class's index; null if unknown (a models file's own images)")
    label_name: str | None = Field(description="the true class's name; null if unknown")
    url: str


class SampleList(BaseModel):
    samples: list[SampleInfo]


class OutputOptions(BaseModel):
    """What to send back; the same keys work as query parameters and multipart form fields."""

    model_config = ConfigDict(extra="forbid")
    layers: list[str] | None = Field(None, description="only these layers (default: all)")
    encoding: Literal["json", "base64"] = "json"
    dtype: Literal["float32", "float16"] = Field("float32", description="float16 needs encoding=base64")


class GradientOptions(OutputOptions):
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


class SummaryOptions(BaseModel):
    summary: bool = Field(False, description=(
        "large models: per-layer summaries (shape, min, max, mean, std, thumbnail) instead of every tensor"))
    thumbnail: int = Field(THUMBNAIL, ge=1, le=MAX_THUMBNAIL, description=(
        "with summary: a [C, H, W] tensor's thumbnail side; each channel is average-pooled to at most this"))

    @field_validator("thumbnail", mode="before")
    @classmethod
    def _thumbnail_not_a_bool(cls, value: Any) -> Any:
        """pydantic would read true as a side of 1."""
        if isinstance(value, bool):
            raise ValueError("a thumbnail side is a whole number, not true or false")
        return value


class ForwardOptions(OutputOptions, SummaryOptions):
    """With summary, also the id of a kept `run` to fetch each layer's full output from."""


class ForwardRequest(ImageSource, ForwardOptions):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"sample": "test-00000"}]})


class BackwardRequest(ImageSource, GradientOptions, SummaryOptions):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"sample": "test-00000", "target": 7, "loss": "cross_entropy"}]})


class Prediction(BaseModel):
    index: int
    label: str
    probabilities: list[float] = Field(description="softmax of the logits, one per class")
    logits: list[float] = Field(description="the model's output before softmax")


class LayerSummary(BaseModel):
    """One layer's output in brief (summary=true). A statistic is null if it is not a finite number."""

    shape: list[int] = Field(examples=[[64, 112, 112]], description="the full output's shape")
    min: float | None
    max: float | None
    mean: float | None
    std: float | None = Field(description="population standard deviation (correction=0)")
    thumbnail: Tensor = Field(description=(
        "[C, H, W]: each channel adaptive-average-pooled to at most thumbnail × thumbnail, [C, h, w] (a side "
        "already that short keeps its length); [N]: the values if N <= 1024, else pooled to [1024]"))


class ForwardResponse(BaseModel):
    model: str
    input: Tensor
    prediction: Prediction
    run: str | None = Field(description=(
        "summary=true: the id by which GET /api/models/{model}/runs/{run}/layers/{layer} serves each layer's "
        "full output while the server keeps the run; null without summary, or when the server keeps no runs"))
    layers: dict[str, Tensor] = Field(description="each layer's output; empty with summary=true")
    # SkipJsonSchema: the key is absent without summary, never null.
    summaries: dict[str, LayerSummary] | SkipJsonSchema[None] = Field(
        None, description="with summary=true only (absent otherwise): each layer in brief")


class RunLayer(BaseModel):
    """One layer's full output from a kept forward run."""

    model: str
    run: str
    layer: str = Field(description='a layer name, or "input" for the input the model consumed')
    tensor: Tensor


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
    layers: dict[str, LayerGradients] = Field(description=(
        "each layer's gradients; with summary=true only the layers named in `layers` (none by default)"))
    # SkipJsonSchema: the key is absent without summary, never null.
    summaries: dict[str, LayerSummary] | SkipJsonSchema[None] = Field(
        None, description="with summary=true only (absent otherwise): every layer's activation gradient in brief")


# --- One optimizer step (POST /api/models/{model}/step) ---------------------------------------

Optimizer = OptimizerName


class OptimizerEntry(BaseModel):
    id: Optimizer
    name: str = Field(examples=["SGD with momentum"])
    description: str
    step_learning_rate: float = Field(description="the default of POST /api/models/{model}/step")
    training_learning_rate: float = Field(description="the default of a training run")
    settings: dict[str, Any] = Field(description="its torch.optim arguments besides lr", examples=[{"momentum": 0.9}])


class Optimizers(BaseModel):
    optimizers: list[OptimizerEntry]


class LayerTypeEntry(BaseModel):
    id: str = Field(examples=["max_pool2d"], description="what a layer of this type reports as its `type`")
    name: str = Field(examples=["Max pooling"])
    family: Family
    description: str = Field(description="what it computes")
    backward: str = Field(description="how the gradient passes back through it")
    view: View | None = Field(description="the page's lesson for it; null: the generic detail view only")
    attributes: list[str] | None = Field(description="the attributes its layers report, in PyTorch's names; "
                                         "null: its module's constants or its function's arguments")
    pooling: Literal["max", "average"] | None = Field(description="for pooling: what a window keeps")


class LayerTypes(BaseModel):
    layer_types: list[LayerTypeEntry]


class StepOptions(GradientOptions):
    layers: list[str] | None = Field(None, description="the layers to update (default: every layer with parameters)")
    optimizer: Optimizer = Field("sgd", description=f"momentum is SGD with momentum {MOMENTUM}")
    lr: float | None = Field(None, gt=0, le=MAX_LR, allow_inf_nan=False, description=(
        f"learning rate (default: {rates('step_lr')})"))

    @field_validator("lr", mode="before")
    @classmethod
    def _lr_not_a_bool(cls, value: Any) -> Any:
        """pydantic would read true as a rate of 1.0."""
        if isinstance(value, bool):
            raise ValueError("a learning rate is a number, not true or false")
        return value


class StepRequest(ImageSource, StepOptions):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"sample": "test-00000", "target": 3, "optimizer": "sgd", "lr": 0.01}]})


class ParameterStep(BaseModel):
    """The JSON form of convscope.optimizers.ParameterStep: one parameter tensor (PyTorch's layout) before
    and after the step, its gradient, and after - before."""

    before: Tensor
    after: Tensor
    gradient: Tensor
    update: Tensor = Field(description="after - before")


class StepResponse(BaseModel):
    model: str
    loss_function: Loss
    target: int
    optimizer: Optimizer
    lr: float
    hyperparameters: dict[str, float | list[float]] = Field(
        examples=[{"momentum": 0.9}], description="the optimizer's settings besides lr (PyTorch's defaults)")
    loss: float = Field(description="before the step")
    loss_after: float = Field(description="the same loss, re-evaluated with every updated parameter")
    prediction: Prediction
    prediction_after: Prediction
    layers: dict[str, dict[str, ParameterStep]] = Field(
        description="layer -> its parameters, named as in the layer list's `parameters` ('weight', 'bias')")


# --- Attribution maps (POST /api/models/{model}/attributions, GET /api/attributions/methods) ----------

PairOption = int | list[int]


class AttributionOptions(BaseModel):
    """The method and its options; each method's own options, defaults and ranges are listed by
    GET /api/attributions/methods, and an option the chosen method does not take is refused."""

    model_config = ConfigDict(extra="forbid")
    method: str = Field(description="one of the methods GET /api/attributions/methods lists", examples=["grad_cam"])
    target: int | None = Field(None, description="class index (default: the predicted class)")
    layer: str | None = Field(None, description="grad_cam, guided_grad_cam: a conv layer (default: the last)")
    steps: int | None = Field(None, description="integrated_gradients: points on the path (default 50)")
    baseline: str | None = Field(None, description="integrated_gradients, occlusion: 'zero' or 'black'")
    samples: int | None = Field(None, description="smoothgrad: noisy copies (default 20)")
    stdevs: float | None = Field(None, description="smoothgrad: noise standard deviation, normalised input space")
    seed: int | None = Field(None, description="smoothgrad: the noise's seed (default 0)")
    window: PairOption | None = Field(None, description="occlusion: patch size, n or [height, width]")
    stride: PairOption | None = Field(None, description="occlusion: patch step, n or [height, width]")
    encoding: Literal["json", "base64"] = "json"
    dtype: Literal["float32", "float16"] = Field("float32", description="float16 needs encoding=base64")

    @field_validator("target", "steps", "samples", "seed", "stdevs", mode="before")
    @classmethod
    def _not_a_bool(cls, value: Any) -> Any:
        """pydantic would read true as 1; these are numbers."""
        if isinstance(value, bool):
            raise ValueError("a number is needed, not true or false")
        return value

    @field_validator("window", "stride", mode="before")
    @classmethod
    def _pair(cls, value: Any) -> Any:
        """A query or form field gives '5', '5,7' or '[5, 7]'; JSON gives 5 or [5, 7]."""
        if isinstance(value, bool) or (isinstance(value, list) and any(isinstance(v, bool) for v in value)):
            raise ValueError("a whole number or [height, width] is needed, not true or false")
        if isinstance(value, str):
            parts = [part.strip() for part in value.strip().strip("[]").split(",")]
            if not all(part.isdecimal() for part in parts):
                raise ValueError("a whole number or height,width is needed, such as 5 or 5,7")
            return int(parts[0]) if len(parts) == 1 else [int(part) for part in parts]
        return value


class AttributionRequest(ImageSource, AttributionOptions):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"sample": "test-00000", "method": "grad_cam"},
        {"sample": "test-00000", "method": "integrated_gradients", "target": 3, "steps": 32, "baseline": "black"},
        {"sample": "test-00000", "method": "occlusion", "window": [4, 4], "stride": 2}]})


class AttributionResponse(BaseModel):
    model: str
    method: str
    target: int = Field(description="the class whose score is attributed")
    label: str = Field(description="the target class's name")
    score: float = Field(description="the target's logit for this input (for a model ending in a softmax layer, "
                                     "that layer's input): the number every method attributes")
    prediction: Prediction
    input: Tensor = Field(description="[C, H, W], the normalised input the model saw")
    attribution: Tensor = Field(description="[C, H, W] at the input's resolution; grad_cam's is [1, H, W], "
                                            "one map for every channel")
    layer: str | None = Field(description="the conv layer, for layer methods")
    layer_attribution: Tensor | None = Field(description="[1, h, w]: the layer method's map at the layer's resolution")
    options: dict[str, Any] = Field(examples=[{"steps": 50, "baseline": "zero"}],
                                    description="the method's options as used, defaults filled in")


class AttributionOption(BaseModel):
    """One option, enough for the page to build its control."""

    name: str = Field(examples=["steps"])
    type: Literal["integer", "number", "string", "integer_pair"] = Field(
        description="integer_pair: a whole number, or [height, width]")
    default: int | float | str | list[int] | None = Field(
        description="null: worked out per model and input (the description says how)")
    minimum: int | float | None
    maximum: int | float | None
    enum: list[str] | None
    description: str


class AttributionMethod(BaseModel):
    name: str = Field(examples=["grad_cam"])
    summary: str = Field(description="what the method computes, in a sentence or two")
    needs_layer: bool
    options: list[AttributionOption]


class AttributionMethods(BaseModel):
    model: str | None = Field(description="the model whose defaults and conv layers are filled in, if one was named")
    methods: list[AttributionMethod]
    common: list[AttributionOption] = Field(description="options every method takes")
