"""GET /api/layer-types: the one table (convscope.layer_types) that the engine names layers by."""

from fastapi.testclient import TestClient

from convscope.layer_types import LAYER_TYPES


def test_the_listing_is_the_table(client: TestClient) -> None:
    listed = client.get("/api/layer-types").json()["layer_types"]
    assert [t["id"] for t in listed] == list(LAYER_TYPES)
    for entry in listed:
        kind = LAYER_TYPES[entry["id"]]
        assert (entry["name"], entry["family"], entry["view"], entry["pooling"]) == (
            kind.name, kind.family, kind.view, kind.pooling)
        assert (entry["description"], entry["backward"]) == (kind.description, kind.backward)
        assert entry["attributes"] == (None if kind.attributes is None else list(kind.attributes))


def test_every_layer_of_the_served_models_has_a_listed_type_or_a_generic_one(client: TestClient) -> None:
    listed = {t["id"] for t in client.get("/api/layer-types").json()["layer_types"]}
    for model in client.get("/api/models").json()["models"]:
        types = {layer["type"] for layer in client.get(f"/api/models/{model['id']}").json()["layers"]}
        assert types <= listed, f"{model['id']}: {sorted(types - listed)} not in the table"
