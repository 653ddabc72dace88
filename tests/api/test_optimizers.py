"""GET /api/optimizers: the one table (convscope.optimizers) that the one-step view and the lab read."""

from fastapi.testclient import TestClient

from convscope.optimizers import OPTIMIZERS


def test_the_optimizers_listing_is_the_table_the_step_and_the_lab_use(client: TestClient) -> None:
    listed = client.get("/api/optimizers").json()["optimizers"]
    assert [o["id"] for o in listed] == list(OPTIMIZERS)
    for entry in listed:
        kind = OPTIMIZERS[entry["id"]]
        assert (entry["step_learning_rate"], entry["training_learning_rate"]) == (kind.step_lr, kind.training_lr)
        assert entry["settings"] == {k: list(v) if isinstance(v, tuple) else v for k, v in kind.settings.items()}
    lab = {o["id"]: o["learning_rate"] for o in client.get("/api/training/options").json()["optimizers"]}
    assert lab == {o.id: o.training_lr for o in OPTIMIZERS.values()}
