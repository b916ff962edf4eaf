"""Contract checks for embedding stores (``protocols.EmbeddingStore``).

Every store must:

* return what a brute-force torch top-k returns (exact stores), or reach the recall@10 it states in its
  ``expected_recall`` attribute (approximate stores, which set ``exact = False``), with the distances of the
  ``oml_core.stores`` convention (L2, ``1 - cos``, ``-dot``), nearest first, ``-1`` / ``inf`` padding;
* reject duplicate ids, a wrong dimension, NaN / infinite values and malformed batches with an ``OMLError``
  that names the problem, leaving the store unchanged;
* ``get`` / ``delete`` / ``count`` consistently, keep everything across ``close()`` and reopening, remember its
  ``dim`` and ``metric``, and refuse to be used once closed;
* store metadata verbatim, SQL-looking strings included, and filter searches on it.

For a registered store the checks build instances from the component's ``example`` config, in which the string
``{tmp}`` marks the store's location (``{"url": "sqlite:///{tmp}/store.db", ...}``): each check replaces it with
a fresh temporary folder. To check a store built some other way (a PostgreSQL URL, another index type), call
``run_store_contract(opener)`` with an ``opener(name, dim=None, metric=None)`` that opens the store called
``name`` (a new, empty one the first time; the same one again when called again with that name).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from oml_core.errors import OMLError
from oml_core.host import Host
from oml_core.protocols import EmbeddingStore
from oml_core.registry import ComponentSpec
from oml_core.testing.contracts import register_contract

__all__ = ["STORE_CHECKS", "StoreOpener", "reference_topk", "run_store_contract", "spec_opener"]

METRICS = ("euclidean", "cosine", "dot")
SQL_INJECTION = "'); DROP TABLE x; --"


class StoreOpener(Protocol):
    """Opens the store called ``name``: new and empty on the first call, the same store on later calls."""

    def __call__(self, name: str, dim: int | None = None, metric: str | None = None) -> EmbeddingStore: ...


# ------------------------------------------------------------------------------------------------ reference
def reference_topk(queries: Tensor, gallery: Tensor, metric: str) -> tuple[Tensor, Tensor]:
    """The brute-force answer, in float64: ``(order (Q, N) of gallery rows, nearest first; sorted distances)``.

    Example:
        >>> order, d = reference_topk(torch.tensor([[0.0, 0.0]]), torch.tensor([[3.0, 4.0], [1.0, 0.0]]), "euclidean")
        >>> order.tolist(), d.tolist()
        ([[1, 0]], [[1.0, 5.0]])
    """
    q, g = queries.double(), gallery.double()
    if metric == "euclidean":
        distances = ((q[:, None, :] - g[None, :, :]) ** 2).sum(-1).sqrt()
    elif metric == "cosine":
        distances = 1.0 - (q / q.norm(dim=1, keepdim=True)) @ (g / g.norm(dim=1, keepdim=True)).T
    else:
        distances = -(q @ g.T)
    sorted_d, order = torch.sort(distances, dim=1, stable=True)
    return order, sorted_d


def _clustered(n: int, dim: int, seed: int, n_clusters: int = 20) -> Tensor:
    """Points around a few centres: retrieval data looks like this, and approximate indexes are tuned for it."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(n_clusters, dim, generator=generator) * 3
    labels = torch.randint(0, n_clusters, (n,), generator=generator)
    return (centres[labels] + torch.randn(n, dim, generator=generator)).float()


def _unique_ids(n: int, seed: int) -> Tensor:
    """Arbitrary, large, non-consecutive int64 ids."""
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.choice(2**50, size=n, replace=False).astype(np.int64) + 2**12)


def _raises(action: Callable[[], object], *fragments: str) -> str:
    try:
        action()
    except OMLError as exc:
        message = str(exc)
        for fragment in fragments:
            assert fragment.lower() in message.lower(), f"error message {message!r} does not mention {fragment!r}"
        return message
    except Exception as exc:  # noqa: BLE001 - the point is to report the wrong kind of error
        raise AssertionError(f"expected an OMLError (a clear message), got {type(exc).__name__}: {exc}") from exc
    raise AssertionError("expected an OMLError, but nothing was raised")


def _exact(store: EmbeddingStore) -> bool:
    return bool(getattr(store, "exact", True))


def _check_result_shape(ids: Tensor, distances: Tensor, n_queries: int, k: int) -> None:
    assert isinstance(ids, Tensor) and isinstance(distances, Tensor), "search must return two tensors"
    assert ids.shape == (n_queries, k) and distances.shape == (n_queries, k), (
        f"search returned shapes {tuple(ids.shape)} and {tuple(distances.shape)}, expected {(n_queries, k)}"
    )
    assert ids.dtype == torch.int64, f"ids must be int64, got {ids.dtype}"
    assert distances.dtype == torch.float32, f"distances must be float32, got {distances.dtype}"
    padding = ids == -1
    assert torch.isinf(distances[padding]).all(), "padded positions (id -1) must have distance inf"
    assert torch.isfinite(distances[~padding]).all(), "found positions must have finite distances"
    finite = torch.where(padding, torch.full_like(distances, math.inf), distances)
    assert (finite[:, 1:] >= finite[:, :-1] - 1e-5).all(), "results must be sorted nearest first"
    for row in ids.tolist():
        found = [i for i in row if i != -1]
        assert len(found) == len(set(found)), f"an id is returned twice for one query: {row}"
        assert row[: len(found)] == found, f"padding (-1) must come after all found ids: {row}"


def _compare_with_reference(
    store: EmbeddingStore, queries: Tensor, gallery: Tensor, gallery_ids: Tensor, k: int, metric: str, what: str
) -> None:
    """Exact stores: the same neighbours (up to ties) at the same distances. Approximate ones: the recall they state."""
    ids, distances = store.search(queries, k)
    _check_result_shape(ids, distances, len(queries), k)
    order, sorted_d = reference_topk(queries, gallery, metric)
    row_of = {int(i): r for r, i in enumerate(gallery_ids.tolist())}
    full_d = torch.empty_like(sorted_d).scatter_(1, order, sorted_d)  # reference distance of every gallery row
    n_found = min(k, len(gallery))
    hits = 0
    for qi in range(len(queries)):
        returned = [int(i) for i in ids[qi].tolist() if i != -1]
        assert all(i in row_of for i in returned), f"{what}: search returned ids that were never added: {returned}"
        true_d = torch.tensor([float(full_d[qi, row_of[i]]) for i in returned], dtype=torch.float64)
        assert torch.allclose(distances[qi, : len(returned)].double(), true_d, rtol=1e-4, atol=1e-4), (
            f"{what} ({metric}): distances {distances[qi, : len(returned)].tolist()} are not the true distances "
            f"{true_d.tolist()} of the returned ids"
        )
        expected = {int(gallery_ids[r]) for r in order[qi, :n_found].tolist()}
        hits += len(expected & set(returned))
        if _exact(store):
            assert len(returned) == n_found, f"{what}: an exact store returned {len(returned)} ids, expected {n_found}"
            tie = n_found < len(gallery) and float(sorted_d[qi, n_found] - sorted_d[qi, n_found - 1]) < 1e-4
            if not tie:
                assert set(returned) == expected, (
                    f"{what} ({metric}): query {qi} got ids {sorted(returned)}, brute force gives {sorted(expected)}"
                )
            assert torch.allclose(true_d, sorted_d[qi, :n_found], rtol=1e-4, atol=1e-4), (
                f"{what} ({metric}): query {qi} is not the brute-force top-{k}"
            )
    recall = hits / (len(queries) * n_found)
    wanted = 1.0 if _exact(store) else float(getattr(store, "expected_recall", 0.9))
    assert recall >= wanted - 1e-9, f"{what} ({metric}): recall@{k} is {recall:.3f}, the store states {wanted}"


# ------------------------------------------------------------------------------------------------ the checks
def search_matches_brute_force(open_store: StoreOpener) -> None:
    """Nearest neighbours as brute force finds them, in all three metrics, over several add batches."""
    for m_index, metric in enumerate(METRICS):
        gallery = _clustered(600, 16, seed=m_index)
        gallery_ids = _unique_ids(600, seed=m_index)
        noise = 0.1 * torch.randn(6, 16, generator=torch.Generator().manual_seed(5))
        queries = torch.cat([gallery[:6] + noise, _clustered(6, 16, seed=99)])
        store = open_store(f"search_{metric}", dim=16, metric=metric)
        try:
            empty_ids, empty_d = store.search(queries[:2], 3)
            _check_result_shape(empty_ids, empty_d, 2, 3)
            assert (empty_ids == -1).all(), "an empty store must return only padding"
            for start in (0, 250, 450):  # several batches, of several sizes
                end = {0: 250, 250: 450, 450: 600}[start]
                store.add(gallery_ids[start:end], gallery[start:end])
            assert store.count() == 600
            assert store.dim == 16 and store.metric == metric
            _compare_with_reference(store, queries, gallery, gallery_ids, 10, metric, type(store).__name__)
            single_ids, _ = store.search(queries[0], 5)  # one query as a 1-d vector
            assert single_ids.shape == (1, 5)
        finally:
            store.close()
    small = open_store("search_padding", dim=4, metric="euclidean")
    try:
        small.add([5, 6, 7], torch.eye(4)[:3])
        ids, distances = small.search(torch.eye(4)[:2], 5)
        _check_result_shape(ids, distances, 2, 5)
        assert (ids[:, 3:] == -1).all() and torch.isinf(distances[:, 3:]).all(), "k > count must pad with -1 / inf"
        if _exact(small):
            assert ids[:, :3].sort(dim=1).values.tolist() == [[5, 6, 7], [5, 6, 7]]
            assert ids[0, 0] == 5 and ids[1, 0] == 6
    finally:
        small.close()


def rejects_bad_input(open_store: StoreOpener) -> None:
    """Duplicate ids, wrong dimensions, NaN / inf, mismatched lengths: clear errors, and the store unchanged."""
    store = open_store("bad_input", dim=8, metric="euclidean")
    try:
        store.add([1, 2, 3, 123456789], torch.randn(4, 8))
        _raises(lambda: store.add([100, 100], torch.randn(2, 8)), "duplicate", "100")
        _raises(lambda: store.add([200, 123456789], torch.randn(2, 8)), "123456789")
        assert store.count() == 4, "a batch with one stored id must add nothing"
        _raises(lambda: store.add([300, 301], torch.randn(2, 9)), "9", "8")
        _raises(lambda: store.search(torch.randn(2, 7), 3), "7", "8")
        nan_batch = torch.randn(2, 8)
        nan_batch[1, 3] = float("nan")
        _raises(lambda: store.add([400, 401], nan_batch), "nan")
        inf_query = torch.randn(1, 8)
        inf_query[0, 0] = float("inf")
        _raises(lambda: store.search(inf_query, 3), "inf")
        _raises(lambda: store.add([500, 501, 502], torch.randn(2, 8)), "3", "2")
        _raises(lambda: store.add([600, 601], torch.randn(2, 8), metadata=[{"a": 1}]), "metadata")
        _raises(lambda: store.add([-5], torch.randn(1, 8)), "-5")
        _raises(lambda: store.search(torch.randn(1, 8), 0), "k")
        assert store.count() == 4, "failed batches must leave the store unchanged"
    finally:
        store.close()


def get_delete_count(open_store: StoreOpener) -> None:
    """``get`` returns exactly what was added; ``delete`` removes (and reports) only stored ids."""
    store = open_store("get_delete", dim=12, metric="cosine")
    try:
        vectors = _clustered(50, 12, seed=3)
        ids = _unique_ids(50, seed=3)
        store.add(ids, vectors, metadata=[{"row": r, "name": f"item {r}"} for r in range(50)])
        pick = [7, 0, 31, 7 + 1]
        got, meta = store.get(ids[pick])
        assert torch.equal(got.float(), vectors[pick]), "get must return the stored float32 vectors exactly"
        assert meta == [{"row": r, "name": f"item {r}"} for r in pick]
        unknown = int(ids.max()) + 17
        _raises(lambda: store.get([int(ids[0]), unknown]), str(unknown))
        removed = store.delete([int(ids[1]), int(ids[2]), unknown])
        assert removed == 2, f"delete must count the stored ids it removed (2), got {removed}"
        assert store.count() == 48
        _raises(lambda: store.get([int(ids[1])]), str(int(ids[1])))
        found, _ = store.search(vectors[[1, 2]], 48)
        assert not ({int(ids[1]), int(ids[2])} & set(found.flatten().tolist())), "deleted ids must not be found"
        store.add([int(ids[1])], vectors[[1]], metadata=[{"again": True}])
        assert store.count() == 49, f"after re-adding a deleted id the count is {store.count()}, expected 49"
        assert store.get([int(ids[1])])[1] == [{"again": True}], "a re-added id must have its new metadata"
        near, _ = store.search(vectors[[1]], 1)
        assert int(near[0, 0]) == int(ids[1]), "a re-added id must be found again"
    finally:
        store.close()


def persists_across_reopen(open_store: StoreOpener) -> None:
    """Everything survives ``close()``; a reopened store remembers ``dim`` and ``metric``; closed means closed."""
    vectors = _clustered(80, 8, seed=4)
    ids = _unique_ids(80, seed=4)
    queries = _clustered(5, 8, seed=44)
    with open_store("persist", dim=8, metric="dot") as store:
        assert store is not None and hasattr(store, "search"), "__enter__ must return the store"
        store.add(ids[:40], vectors[:40], metadata=[{"i": i} for i in range(40)])
        store.add(ids[40:], vectors[40:])
        before_ids, before_d = store.search(queries, 6)
    _raises(lambda: store.count(), "closed")
    store = open_store("persist")
    try:
        assert store.dim == 8 and store.metric == "dot", f"reopened store has dim={store.dim}, metric={store.metric!r}"
        assert store.count() == 80
        after_ids, after_d = store.search(queries, 6)
        assert torch.equal(before_ids, after_ids), "search results changed across close/reopen"
        assert torch.allclose(before_d, after_d)
        got, meta = store.get(ids[[0, 79]])
        assert torch.equal(got.float(), vectors[[0, 79]]) and meta == [{"i": 0}, {}]
    finally:
        store.close()
    _raises(lambda: open_store("persist", dim=9), "8")
    _raises(lambda: open_store("persist", metric="euclidean"), "dot")


def metadata_round_trip(open_store: StoreOpener) -> None:
    """Metadata comes back verbatim, SQL-looking strings included, and filters on it are safe."""
    values: list[Mapping[str, Any] | None] = [
        {"path": SQL_INJECTION, "label": 1},
        {"path": '"; DELETE FROM embeddings; --', "label": 2, "quote's": "it's \"quoted\" \\ back"},
        {"path": "ñ 中文 🙂", "nested": {"list": [1, 2.5, None, {"deep": True}]}, "big": 2**53},
        {"path": "x", "flag": False, "ratio": 0.1, "none": None},
        None,
        {},
    ]
    expected = [v or {} for v in values]
    vectors = _clustered(len(values), 6, seed=5)
    ids = torch.arange(10, 10 + len(values))
    store = open_store("metadata", dim=6, metric="euclidean")
    try:
        store.add(ids, vectors, metadata=values)
        assert store.get(ids)[1] == expected
        for key, value in [("path", SQL_INJECTION), ("quote's", "it's \"quoted\" \\ back"), ("flag", False), ("label", 2)]:
            found, _ = store.search(vectors, 3, filter={key: value})
            want = [int(i) for i, m in zip(ids.tolist(), expected) if m.get(key) == value and type(m.get(key)) is type(value)]
            got = sorted({i for i in found.flatten().tolist() if i != -1})
            assert got == want, f"filter {{{key!r}: {value!r}}} found {found.tolist()}, expected ids {want}"
        nothing, _ = store.search(vectors[:1], 3, filter={"path": SQL_INJECTION + " "})
        assert (nothing == -1).all()
        assert store.count() == len(values), "a filter search must not change the store"
    finally:
        store.close()
    store = open_store("metadata")
    try:
        assert store.get(ids)[1] == expected, "metadata changed across close/reopen"
    finally:
        store.close()


def filter_matches_brute_force(open_store: StoreOpener) -> None:
    """A filtered search returns the nearest items among those whose metadata match (all of them, when exact)."""
    vectors = _clustered(300, 10, seed=6)
    ids = _unique_ids(300, seed=6)
    groups = ["a", "b", "c"]
    metadata = [{"group": groups[r % 3], "n": r % 2} for r in range(300)]
    queries = _clustered(6, 10, seed=66)
    store = open_store("filter", dim=10, metric="euclidean")
    try:
        store.add(ids, vectors, metadata=metadata)
        for condition in ({"group": "b"}, {"group": "c", "n": 1}, {"group": "zzz"}, {"missing_key": 1}):
            rows = [r for r, m in enumerate(metadata) if all(m.get(k, object()) == v for k, v in condition.items())]
            found, distances = store.search(queries, 7, filter=condition)
            _check_result_shape(found, distances, len(queries), 7)
            allowed = {int(ids[r]) for r in rows}
            returned = {i for i in found.flatten().tolist() if i != -1}
            assert returned <= allowed, f"filter {condition} returned items that do not match it"
            if not rows:
                assert not returned
            elif _exact(store):
                order, _ = reference_topk(queries, vectors[rows], "euclidean")
                for qi in range(len(queries)):
                    expected = [int(ids[rows[j]]) for j in order[qi, :7].tolist()]
                    got = found[qi].tolist()[: len(expected)]
                    assert got == expected, f"filter {condition}: query {qi} got {got}, brute force gives {expected}"
    finally:
        store.close()


#: Every store check, in the order they run.
STORE_CHECKS: tuple[Callable[[StoreOpener], None], ...] = (
    search_matches_brute_force,
    rejects_bad_input,
    get_delete_count,
    persists_across_reopen,
    metadata_round_trip,
    filter_matches_brute_force,
)


def run_store_contract(open_store: StoreOpener, *, checks: tuple[Callable[[StoreOpener], None], ...] = STORE_CHECKS) -> None:
    """Run the store checks against stores made by ``open_store`` (see the module docstring).

    Example (a PostgreSQL store, one table per name)::

        run_store_contract(lambda name, dim=None, metric=None: SqlStore(pg_url, table=f"t_{name}", dim=dim, metric=metric))
    """
    for check in checks:
        try:
            check(open_store)
        except AssertionError as exc:
            exc.add_note(f"(store contract check {check.__name__})")
            raise


# ------------------------------------------------------------------------------------------------ registered stores
def spec_opener(host: Host, spec: ComponentSpec, folder: str | Path, **overrides: Any) -> StoreOpener:
    """An opener for a registered store: its example config, ``{tmp}`` replaced by ``folder/<name>``."""
    if not any(isinstance(v, str) and "{tmp}" in v for v in spec.example.values()):
        raise AssertionError(
            f"store {spec.name!r}: its registered example must name its location with '{{tmp}}' "
            f"(e.g. 'sqlite:///{{tmp}}/store.db') so that the contract checks can create fresh stores"
        )

    def open_store(name: str, dim: int | None = None, metric: str | None = None) -> EmbeddingStore:
        location = Path(folder) / name
        location.mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {
            key: value.replace("{tmp}", str(location)) if isinstance(value, str) else value for key, value in spec.example.items()
        }
        config.update(overrides)
        config["dim"], config["metric"] = dim, metric
        store: EmbeddingStore = host.registries.stores.create(spec.name, config)
        return store

    return open_store


def _registered(check: Callable[[StoreOpener], None]) -> Callable[[Host, ComponentSpec], None]:
    def run(host: Host, spec: ComponentSpec) -> None:
        with tempfile.TemporaryDirectory(prefix="oml-store-contract-") as folder:
            check(spec_opener(host, spec, folder))

    run.__name__ = check.__name__
    run.__doc__ = check.__doc__
    return run


for _check in STORE_CHECKS:
    register_contract("stores")(_registered(_check))


@register_contract("stores")
def opens_its_own_urls(host: Host, spec: ComponentSpec) -> None:
    """A store whose config declares URLs (``oml_core.stores.StoreLocator``) claims the location of its own example,
    leaves URLs of other schemes to other stores, and its config has ``dim``, ``metric`` and ``create``."""
    import attrs

    from oml_core.stores import StoreLocator

    config: Any = spec.config
    if not isinstance(config, StoreLocator):
        return
    fields = {f.name for f in attrs.fields(spec.config)}
    missing = {"dim", "metric", "create"} - fields
    assert not missing, f"store {spec.name!r}: a store opened by URL needs the config fields {sorted(missing)}"
    assert config.url_schemes and all(isinstance(s, str) and "://" not in s for s in config.url_schemes), (
        f"store {spec.name!r}: url_schemes must name schemes without '://', got {config.url_schemes!r}"
    )
    assert config.locate("oml-contract-unknown-scheme://x") is None, f"store {spec.name!r} claims a URL of another scheme"
    with tempfile.TemporaryDirectory(prefix="oml-store-contract-") as folder:
        for key, value in spec.example.items():
            if isinstance(value, str) and "{tmp}" in value:
                location = value.replace("{tmp}", folder)
                scheme = location.split("://", 1)[0] if "://" in location else None
                url = location if scheme in config.url_schemes else f"{config.url_schemes[0]}://{location}"
                claimed = config.locate(url)
                assert claimed is not None and key in claimed, (
                    f"store {spec.name!r}: locate({url!r}) must return the {key!r} field, got {claimed!r}"
                )
