"""ForwardRunCache: a bounded, thread-safe LRU of forward runs, measured in bytes of tensor memory."""

import gc
import re
import threading
import weakref

import torch
from torch import Tensor

from convscope.engine.cache import ForwardRunCache, footprint


class Owner:
    """Stands in for a model's Graph: the cache only holds a weak reference to it."""


def layers(values: int, fill: float = 1.0) -> dict[str, Tensor]:
    """Two layer outputs of `values` float32 values each: 8 * values bytes."""
    return {"a": torch.full((values,), fill), "b": torch.full((values,), -fill)}


X = torch.zeros(4)  # a 16-byte input
OWNER = Owner()


def run_bytes(values: int) -> int:
    return 8 * values + X.numel() * 4


def test_put_keeps_detached_float32_copies_of_the_values_and_get_returns_them() -> None:
    cache = ForwardRunCache(10_000)
    x = torch.arange(6, dtype=torch.float64).reshape(1, 2, 3).requires_grad_(True)
    out = x * 2
    run_id = cache.put("m", OWNER, x, {"double": out, "same": x})
    assert run_id is not None
    run = cache.get(run_id)
    assert run is not None and run.id == run_id and run.model == "m" and list(run.layers) == ["double", "same"]
    for kept, given in ((run.input, x), (run.layers["double"], out), (run.layers["same"], x)):
        assert kept.dtype == torch.float32 and not kept.requires_grad
        assert torch.equal(kept, given.detach().to(torch.float32))
    assert run.made_by("m", OWNER) and not run.made_by("other", OWNER) and not run.made_by("m", Owner())
    assert cache.nbytes == run.nbytes == 3 * 6 * 4


def test_run_ids_are_fresh_random_and_url_safe() -> None:
    cache = ForwardRunCache(10**9)
    ids = {cache.put("m", OWNER, X, layers(1)) for _ in range(200)}
    assert len(ids) == 200
    assert all(isinstance(i, str) and re.fullmatch(r"[A-Za-z0-9_-]{16}", i) for i in ids)


def test_views_of_one_storage_are_counted_once() -> None:
    base = torch.zeros(1, 8, 4, 4)
    assert footprint([base[0], base.flatten(1), base]) == 8 * 16 * 4
    assert footprint([torch.zeros(3), torch.zeros(5)]) == 32
    cache = ForwardRunCache(10_000)
    run_id = cache.put("m", OWNER, X, {"pool": base[0], "flatten": base.flatten(1)[0]})
    assert run_id is not None and cache.nbytes == 8 * 16 * 4 + 16


def test_least_recently_used_runs_are_evicted_first_until_the_bytes_fit() -> None:
    size = run_bytes(100)
    cache = ForwardRunCache(3 * size)  # room for three runs
    first, second, third = (cache.put("m", OWNER, X, layers(100, i)) for i in (1.0, 2.0, 3.0))
    assert first and second and third and cache.nbytes == 3 * size
    assert cache.get(first) is not None  # now `second` is the least recently used
    fourth = cache.put("m", OWNER, X, layers(100, 4.0))
    assert fourth is not None
    assert cache.get(second) is None
    assert [cache.get(r) is not None for r in (first, third, fourth)] == [True, True, True]
    assert len(cache) == 3 and cache.nbytes == 3 * size
    # A run twice as large pushes out the two least recently used ones (first, then third).
    big = cache.put("m", OWNER, X, layers(200, 5.0))
    assert big is not None and cache.get(first) is None and cache.get(third) is None
    assert cache.get(fourth) is not None and cache.nbytes == size + run_bytes(200) <= cache.budget
    kept = cache.get(big)
    assert kept is not None and torch.equal(kept.layers["a"], torch.full((200,), 5.0))


def test_a_run_larger_than_the_whole_budget_is_not_kept_and_evicts_nothing() -> None:
    cache = ForwardRunCache(run_bytes(100) + 100)
    small = cache.put("m", OWNER, X, layers(100))
    assert cache.put("m", OWNER, X, layers(1000)) is None
    assert small is not None and cache.get(small) is not None and len(cache) == 1
    exact = ForwardRunCache(run_bytes(100))
    assert exact.put("m", OWNER, X, layers(100)) is not None  # exactly the budget fits


def test_budget_zero_keeps_nothing() -> None:
    cache = ForwardRunCache(0)
    assert cache.put("m", OWNER, X, layers(1)) is None
    assert len(cache) == 0 and cache.nbytes == 0 and cache.get("anything") is None
    assert ForwardRunCache(-5).budget == 0


def test_evicted_runs_release_their_tensors() -> None:
    cache = ForwardRunCache(run_bytes(1000))
    first = cache.put("m", OWNER, X, layers(1000))
    assert first is not None
    run = cache.get(first)
    assert run is not None
    kept = weakref.ref(run.layers["a"])
    del run
    assert cache.put("m", OWNER, X, layers(1000)) is not None and cache.get(first) is None
    gc.collect()
    assert kept() is None and len(cache) == 1


def test_the_owner_is_held_weakly_so_a_replaced_model_is_not_kept_alive() -> None:
    cache = ForwardRunCache(10_000)
    owner = Owner()
    run_id = cache.put("m", owner, X, layers(1))
    assert run_id is not None
    del owner
    gc.collect()
    run = cache.get(run_id)
    assert run is not None and run.owner() is None and not run.made_by("m", Owner())


def test_many_threads_putting_and_getting_at_once_keep_the_budget_and_each_run_its_own_values() -> None:
    size = run_bytes(50)
    cache = ForwardRunCache(20 * size)
    found: dict[str, float] = {}
    lock = threading.Lock()
    errors: list[str] = []

    def work(worker: int) -> None:
        for i in range(100):
            value = float(worker * 1000 + i)
            run_id = cache.put("m", OWNER, X, layers(50, value))
            assert run_id is not None
            with lock:
                found[run_id] = value
            run = cache.get(run_id)  # may already be evicted by other threads; if kept, it is ours
            if run is not None and not torch.equal(run.layers["a"], torch.full((50,), value)):
                errors.append(run_id)
            assert cache.nbytes <= cache.budget

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(found) == 800 and len(cache) == 20 and cache.nbytes == 20 * size
    for run_id, value in found.items():
        run = cache.get(run_id)
        if run is not None:
            assert torch.equal(run.layers["b"], torch.full((50,), -value))
