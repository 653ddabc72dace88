"""/openapi.json tells the truth: the real error body, every status a route returns, and only keys
that real answers have (and every key they have), so that a generated client finds no surprise."""

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel

from convscope.schemas import (
    AttributionMethods,
    AttributionResponse,
    BackwardResponse,
    ErrorBody,
    ForwardResponse,
    ModelDetail,
    ModelList,
    RunLayer,
    SampleList,
    Weights,
)
from tests.api.rebuild import MODELS
from tests.api.test_errors import CASES, PNG

INFERENCE_ERRORS = {"404", "413", "415", "422", "429"}
# Documented keys that the built-in models cannot show: batch norm's buffers (neither model has one).
ONLY_FOR_BATCH_NORM = {"Weights.running_mean", "Weights.running_var"}


@pytest.fixture(scope="module")
def spec(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    found: dict[str, Any] = response.json()
    return found


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                yield path, method, op


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        ref = schema["$ref"]
        assert ref.startswith("#/"), ref
        target: Any = spec
        for part in ref[2:].split("/"):
            target = target[part]
        schema = target
    return schema


def json_schema(spec: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    return resolve(spec, response["content"]["application/json"]["schema"])


def test_no_fastapi_validation_error_schema_anywhere_in_the_spec(spec: dict[str, Any]) -> None:
    text = json.dumps(spec)
    assert "HTTPValidationError" not in text
    assert "ValidationError" not in spec["components"]["schemas"]


def test_every_ref_in_the_spec_resolves(spec: dict[str, Any]) -> None:
    refs = re.findall(r'"\$ref": "([^"]+)"', json.dumps(spec))
    assert refs
    for ref in set(refs):
        resolve(spec, {"$ref": ref})  # raises KeyError on a dangling reference


def test_every_api_route_declares_its_error_statuses_with_a_string_detail(spec: dict[str, Any]) -> None:
    checked = 0
    for path, method, op in operations(spec):
        if not path.startswith("/api") or path in ("/api/health", "/api/optimizers", "/api/layer-types"):  # take nothing, cannot fail
            continue
        errors = {status: r for status, r in op["responses"].items() if status.startswith("4")}
        if "{" in path:
            assert {"404", "422"} <= set(errors), f"{method} {path} declares {sorted(errors)}"
        assert errors, f"{method} {path} declares no error"
        for status, response in errors.items():
            schema = json_schema(spec, response)
            assert schema["properties"]["detail"]["type"] == "string", f"{method} {path} {status}"
            assert "detail" in schema["required"], f"{method} {path} {status}"
        checked += 1
    assert checked >= 6


def test_forward_and_backward_declare_404_413_415_422_429(spec: dict[str, Any]) -> None:
    for endpoint in ("forward", "backward", "attributions"):
        op = spec["paths"][f"/api/models/{{model}}/{endpoint}"]["post"]
        assert INFERENCE_ERRORS <= set(op["responses"]), endpoint
        assert "200" in op["responses"]


def template_of(spec: dict[str, Any], method: str, path: str) -> str:
    path = path.split("?")[0]
    for template, item in spec["paths"].items():
        pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path) and method.lower() in item:
            return str(template)
    raise AssertionError(f"{method} {path} is not in the spec")


def test_every_status_the_error_tests_provoke_is_declared_on_its_route(spec: dict[str, Any]) -> None:
    for name, method, path, _, status, _ in CASES:
        template = template_of(spec, method, path)
        declared = spec["paths"][template][method.lower()]["responses"]
        assert str(status) in declared, f"{name}: {method} {template} returns {status}, declares {sorted(declared)}"


@pytest.fixture(scope="module")
def answers(client: TestClient) -> dict[tuple[str, str], list[Any]]:
    """Real answers, by (spec path, method): every route, in each encoding."""
    got: dict[tuple[str, str], list[Any]] = {}

    def keep(path: str, method: str, response: Any) -> None:
        assert response.status_code == 200, response.text
        got.setdefault((path, method), []).append(response.json())

    keep("/api/health", "get", client.get("/api/health"))
    keep("/api/models", "get", client.get("/api/models"))
    for model in MODELS:
        detail = client.get(f"/api/models/{model}")
        keep("/api/models/{model}", "get", detail)
        keep("/api/models/{model}/samples", "get", client.get(f"/api/models/{model}/samples"))
        for layer in detail.json()["layers"]:
            if layer["parameters"]:
                for query in ({}, {"encoding": "base64"}, {"encoding": "base64", "dtype": "float16"}):
                    keep("/api/models/{model}/layers/{layer}/weights", "get",
                         client.get(f"/api/models/{model}/layers/{layer['name']}/weights", params=query))
        for query in ({}, {"encoding": "base64"}, {"encoding": "base64", "dtype": "float16"}):
            keep("/api/models/{model}/forward", "post",
                 client.post(f"/api/models/{model}/forward", params=query, json={"sample": "test-00000"}))
            brief = client.post(f"/api/models/{model}/forward", params=query,
                                json={"sample": "test-00000", "summary": True})
            keep("/api/models/{model}/forward", "post", brief)
            keep("/api/models/{model}/runs/{run}/layers/{layer}", "get", client.get(
                f"/api/models/{model}/runs/{brief.json()['run']}/layers/{detail.json()['layers'][0]['name']}",
                params=query))
            first = detail.json()["layers"][0]["name"]
            for body in ({}, {"summary": True, "layers": [first]}):  # every layer; all in brief, one in full
                keep("/api/models/{model}/backward", "post", client.post(
                    f"/api/models/{model}/backward", params=query, json={"sample": "test-00000", **body}))
            for method in ("grad_cam", "integrated_gradients"):  # with and without a layer map
                keep("/api/models/{model}/attributions", "post", client.post(
                    f"/api/models/{model}/attributions", params=query, json={"sample": "test-00000", "method": method}))
        keep("/api/attributions/methods", "get", client.get("/api/attributions/methods", params={"model": model}))
    keep("/api/attributions/methods", "get", client.get("/api/attributions/methods"))
    return got


def test_real_answers_validate_against_the_response_models(answers: dict[tuple[str, str], list[Any]],
                                                           client: TestClient) -> None:
    models: dict[tuple[str, str], type[BaseModel]] = {("/api/models", "get"): ModelList, ("/api/models/{model}", "get"): ModelDetail,
              ("/api/models/{model}/samples", "get"): SampleList,
              ("/api/models/{model}/layers/{layer}/weights", "get"): Weights,
              ("/api/models/{model}/forward", "post"): ForwardResponse,
              ("/api/models/{model}/runs/{run}/layers/{layer}", "get"): RunLayer,
              ("/api/models/{model}/backward", "post"): BackwardResponse,
              ("/api/models/{model}/attributions", "post"): AttributionResponse,
              ("/api/attributions/methods", "get"): AttributionMethods}
    for key, model in models.items():
        assert answers[key], key
        for answer in answers[key]:
            model.model_validate(answer)
    for name, method, path, kwargs, _, _ in CASES[:12]:
        ErrorBody.model_validate(client.request(method, path, **kwargs).json())


def could_hold_an_object(spec: dict[str, Any], schema: dict[str, Any]) -> bool:
    schema = resolve(spec, schema)
    if "anyOf" in schema or "oneOf" in schema:
        return any(could_hold_an_object(spec, s) for s in schema.get("anyOf", schema.get("oneOf", [])))
    if schema.get("type") == "array":
        return could_hold_an_object(spec, schema.get("items", {}))
    return schema.get("type") == "object" or "properties" in schema or "additionalProperties" in schema


def fits(spec: dict[str, Any], schema: dict[str, Any], value: Any) -> bool:
    kind = resolve(spec, schema).get("type", "object")
    return {"object": isinstance(value, dict), "array": isinstance(value, list), "null": value is None,
            "string": isinstance(value, str), "integer": isinstance(value, int),
            "number": isinstance(value, (int, float)), "boolean": isinstance(value, bool)}[kind]


def key_problems(spec: dict[str, Any], schema: dict[str, Any], values: list[Any], where: str) -> list[str]:
    """Documented keys no answer has, and answers' keys that are not documented."""
    if not values or not could_hold_an_object(spec, schema):
        return []
    title = resolve(spec, schema).get("title", where)
    schema = resolve(spec, schema)
    branches = schema.get("anyOf", schema.get("oneOf"))
    if branches:
        return [p for b in branches for p in key_problems(spec, b, [v for v in values if fits(spec, b, v)], where)]
    if schema.get("type") == "array":
        return key_problems(spec, schema["items"], [x for v in values for x in v], f"{where}[]")
    problems = []
    properties = schema.get("properties", {})
    for name, sub in properties.items():
        present = [v[name] for v in values if name in v]
        if not present and f"{title}.{name}" not in ONLY_FOR_BATCH_NORM:
            problems.append(f"{where}.{name} is documented but in no answer")
        problems += key_problems(spec, sub, present, f"{where}.{name}")
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        problems += key_problems(spec, extra, [x for v in values for x in v.values()], f"{where}.*")
    elif extra is not True:
        undocumented = {k for v in values for k in v} - set(properties)
        problems += [f"{where}.{k} is in answers but not documented" for k in sorted(undocumented)]
    return problems


def test_every_documented_response_key_is_in_real_answers_and_every_answer_key_is_documented(
        spec: dict[str, Any], answers: dict[tuple[str, str], list[Any]]) -> None:
    problems = []
    for (path, method), values in answers.items():
        schema = spec["paths"][path][method]["responses"]["200"]["content"]["application/json"]["schema"]
        problems += key_problems(spec, schema, values, f"{method.upper()} {path}")
    assert not problems, "\n".join(problems)
    layers = [layer for (p, _), vs in answers.items() if p == "/api/models/{model}" for v in vs for layer in v["layers"]]
    assert not any(layer["type"] == "batch_norm2d" for layer in layers), "now running_mean can be checked: do"


def test_error_answers_have_exactly_the_documented_keys(spec: dict[str, Any], client: TestClient) -> None:
    op = spec["paths"]["/api/models/{model}/backward"]["post"]
    errors = []
    for name, method, path, kwargs, status, _ in CASES:
        if "backward" in path:
            errors.append(client.request(method, path, **kwargs).json())
    schema = op["responses"]["422"]["content"]["application/json"]["schema"]
    assert not key_problems(spec, schema, errors, "error")  # both `detail` and (validation) `errors` occur


def request_schema(spec: dict[str, Any], endpoint: str) -> dict[str, Any]:
    body = spec["paths"][f"/api/models/{{model}}/{endpoint}"]["post"]["requestBody"]["content"]
    return resolve(spec, body["application/json"]["schema"])


@pytest.mark.parametrize("endpoint", ["forward", "backward", "attributions"])
def test_documented_request_examples_work_on_every_model(spec: dict[str, Any], client: TestClient,
                                                         endpoint: str) -> None:
    schema = request_schema(spec, endpoint)
    examples = schema.get("examples", [])
    assert examples, f"{endpoint}: no request example in /docs"
    for example in examples:
        assert set(example) <= set(schema["properties"]), example
        for model in MODELS:
            response = client.post(f"/api/models/{model}/{endpoint}", json=example)
            assert response.status_code == 200, f"{model} {example}: {response.text}"


def value_for(name: str, schema: dict[str, Any], layer: str, sample: str) -> str:
    """A valid, non-default value for a documented option."""
    if "enum" in schema:
        return str(schema["enum"][-1])  # base64, float16, logit: valid together
    return {"layers": layer, "target": "1", "sample": sample, "summary": "true", "thumbnail": "4"}[name]


@pytest.mark.parametrize("endpoint", ["forward", "backward"])
def test_documented_query_parameters_and_form_fields_all_work(spec: dict[str, Any], client: TestClient,
                                                              endpoint: str) -> None:
    op = spec["paths"][f"/api/models/{{model}}/{endpoint}"]["post"]
    model = MODELS[0]
    layer = client.get(f"/api/models/{model}").json()["layers"][0]["name"]
    sample = client.get(f"/api/models/{model}/samples").json()["samples"][0]["id"]
    query = {p["name"]: value_for(p["name"], p["schema"], layer, sample) for p in op["parameters"] if p["in"] == "query"}
    assert {"layers", "encoding", "dtype"} <= set(query)
    if endpoint == "backward":
        assert {"target", "loss"} <= set(query)
    by_query = client.post(f"/api/models/{model}/{endpoint}", params=query)
    assert by_query.status_code == 200, by_query.text
    answer = by_query.json()
    assert list(answer["summaries"] if endpoint == "forward" else answer["layers"]) == [layer]  # summary=true

    form = op["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
    assert form["image"]["format"] == "binary"
    fields = {name: value_for(name, schema, layer, sample) for name, schema in form.items() if name != "image"}
    by_form = client.post(f"/api/models/{model}/{endpoint}", files={"image": ("x.png", PNG, "image/png")}, data=fields)
    assert by_form.status_code == 200, by_form.text
    for key in ("encoding", "dtype", "target", "loss"):
        if key in fields:
            assert fields[key] in json.dumps(by_form.json()), key  # the option took effect


def test_docs_page_is_served(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200 and "openapi.json" in page.text
