import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from miner.cluster import (
    ClusterParams,
    Clusterer,
    UmapHdbscanClusterer,
    cluster_vectors,
    min_cluster_size_for,
)


def _blobs(k=6, per=80, d=384, spread=0.35, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = np.repeat(centres, per, axis=0) + rng.normal(scale=spread / np.sqrt(d), size=(k * per, d))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), np.repeat(np.arange(k), per)


@pytest.fixture(scope="module")
def blobs():
    return _blobs()


@pytest.fixture(scope="module")
def labels_twice(blobs):
    x, _ = blobs
    return cluster_vectors(x), cluster_vectors(x, ClusterParams())


def test_recovers_well_separated_blobs(blobs, labels_twice):
    _, gold = blobs
    labels = labels_twice[0]
    assert labels.shape == gold.shape
    assert adjusted_rand_score(gold, labels) > 0.95


def test_same_seed_is_deterministic(labels_twice):
    a, b = labels_twice
    assert adjusted_rand_score(a, b) == 1.0
    assert np.array_equal(a, b)


def test_labels_are_contiguous(labels_twice):
    labels = labels_twice[0]
    ids = np.unique(labels[labels >= 0])
    assert ids.tolist() == list(range(ids.size))
    assert labels.dtype.kind == "i"


def test_clusterer_protocol(blobs, labels_twice):
    c = UmapHdbscanClusterer()
    assert isinstance(c, Clusterer)
    assert c.name == "umap-hdbscan"


def test_tiny_inputs():
    assert cluster_vectors(np.zeros((0, 8), dtype=np.float32)).shape == (0,)
    x, _ = _blobs(k=2, per=3, d=16)
    labels = cluster_vectors(x)
    assert labels.shape == (6,) and (labels >= -1).all()


def test_min_cluster_size_rule_is_monotone():
    sizes = [min_cluster_size_for(n) for n in (0, 300, 3000, 20000, 100000)]
    assert sizes == sorted(sizes) and sizes[0] >= 2


def test_import_is_light():
    import subprocess
    import sys

    code = "import sys, miner.cluster; print('umap' in sys.modules or 'hdbscan' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_unknown_refine_rejected():
    with pytest.raises(ValueError):
        cluster_vectors(np.eye(30, 8, dtype=np.float32), ClusterParams(refine="kmeans"))


def test_same_input_gives_same_clusters_in_separate_processes(tmp_path):
    """Repeated answers (identical vectors) once made UMAP's output vary from process to process."""
    import subprocess
    import sys

    rng = np.random.default_rng(3)
    centres = rng.normal(size=(5, 64))
    points = np.repeat(centres, 40, axis=0) + rng.normal(scale=0.3, size=(200, 64))
    points[::7] = points[0]  # many exact duplicates, as "idk" answers are
    np.save(tmp_path / "v.npy", points.astype(np.float32))
    code = ("import sys, numpy as np; from miner.cluster import cluster_vectors; "
            "print(','.join(map(str, cluster_vectors(np.load(sys.argv[1])))))")
    runs = [subprocess.run([sys.executable, "-c", code, str(tmp_path / "v.npy")], capture_output=True, text=True,
                           check=True).stdout.strip() for _ in range(2)]
    assert runs[0] == runs[1]


def test_centre_by_group_removes_each_group_mean():
    from miner.cluster import centre_by_group

    rng = np.random.default_rng(0)
    groups = np.repeat([0, 1, 2], 20)
    x = rng.normal(size=(60, 16)) + np.repeat(rng.normal(scale=3.0, size=(3, 16)), 20, axis=0)
    centred = centre_by_group(x, groups)
    assert centred.shape == x.shape and np.allclose(np.linalg.norm(centred, axis=1), 1.0, atol=1e-5)
    x_unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    means = [np.linalg.norm(centred[groups == g].mean(axis=0)) for g in range(3)]
    raw_means = [np.linalg.norm(x_unit[groups == g].mean(axis=0)) for g in range(3)]
    assert max(means) < 0.5 * min(raw_means)
    small = centre_by_group(x[:25], groups[:25])  # group 1 has 5 rows: left as it is
    assert np.allclose(small[20:], x_unit[20:25], atol=1e-6)
    with pytest.raises(ValueError):
        centre_by_group(x, groups[:10])
