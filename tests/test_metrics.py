"""Metrics against published values and hand-built cases; the one tie rule wherever ranking happens."""

from __future__ import annotations

import copy
import math
import pickle

import numpy as np
import pytest
import torch

from course import metrics
from course.metrics import (
    Estimate,
    accuracy,
    mean_per_class_recall,
    per_class_recall,
    proportion,
    recall_at_k,
    top_k_accuracy,
    wilson_interval,
)
from course.ranking import top_k

# Newcombe (1998), "Two-sided confidence intervals for the single proportion: comparison of
# seven methods", Statistics in Medicine 17:857-872, Table II, method 3 (Wilson score, no
# continuity correction), 95%: (successes, n) -> (low, high) to four decimals.
NEWCOMBE_WILSON = {
    (81, 263): (0.2553, 0.3662),
    (15, 148): (0.0624, 0.1605),
    (0, 20): (0.0000, 0.1611),
    (1, 29): (0.0061, 0.1718),
}


@pytest.mark.parametrize(("counts", "expected"), NEWCOMBE_WILSON.items())
def test_wilson_interval_matches_newcombes_published_values(counts, expected):
    low, high = wilson_interval(*counts)
    assert (round(low, 4), round(high, 4)) == expected


def test_wilson_interval_matches_the_closed_form_at_other_levels():
    # z = 2.5758293035489 at 99%, written out by hand: centre and half-width of the score interval
    z, k, n = 2.5758293035489004, 81, 263
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert wilson_interval(k, n, 0.99) == pytest.approx((centre - half, centre + half), abs=1e-12)
    # the same from scipy.stats.binomtest(81, 263).proportion_ci(0.99, method="wilson")
    assert wilson_interval(k, n, 0.99) == pytest.approx((0.2401369, 0.3852825), abs=1e-7)
    narrow, wide = wilson_interval(k, n, 0.5), wilson_interval(k, n, 0.99)
    assert wide[0] < narrow[0] < p < narrow[1] < wide[1]


def test_wilson_interval_edges_stay_in_the_unit_interval():
    assert wilson_interval(20, 20) == pytest.approx((1 - 0.1611, 1.0), abs=1e-4)  # mirror of 0/20
    assert wilson_interval(0, 1)[0] == 0.0 and wilson_interval(1, 1)[1] == 1.0


@pytest.mark.parametrize(("args", "message"), [
    ((1, 0), "n must be a positive integer"),
    ((3, 2), "successes must be an integer between 0 and n=2"),
    ((-1, 2), "successes"),
    ((1.5, 2), "successes"),
    ((1, 2, 1.0), "confidence must be between 0 and 1"),
])
def test_wilson_interval_bad_input(args, message):
    with pytest.raises(ValueError, match=message):
        wilson_interval(*args)


def test_estimate_reads_well_and_behaves_as_its_value():
    e = proportion(525, 600)
    assert str(e) == "87.5% (95% CI 84.6-89.9%, n=600)"
    assert f"{e:.1%}" == "87.5%" and f"{e}" == str(e)
    assert float(e) == e.value == 0.875 and type(e.value) is float
    assert e - 0.5 == pytest.approx(0.375) and type(e - 0.5) is float  # a difference: no CI
    assert e > 0.8 and np.mean([e, proportion(1, 2)]) == pytest.approx(0.6875)
    assert (e.low, e.high, e.n, e.confidence) == pytest.approx((0.8461, 0.8991, 600, 0.95), abs=1e-4)
    with pytest.raises(AttributeError, match="immutable"):
        e.n = 3  # type: ignore[misc]
    for clone in (pickle.loads(pickle.dumps(e)), copy.deepcopy(e)):
        assert isinstance(clone, Estimate) and repr(clone) == repr(e)


def test_accuracy_hand_built():
    got = accuracy(["a", "b", "b", "c"], np.array(["a", "b", "c", "c"]))
    assert isinstance(got, Estimate) and got == 0.75 and got.n == 4
    assert (got.low, got.high) == wilson_interval(3, 4)
    assert accuracy(torch.tensor([1, 2, 3]), [1, 2, 0]) == pytest.approx(2 / 3)


def test_accuracy_bad_input():
    with pytest.raises(ValueError, match="as many predictions as labels"):
        accuracy(["a"], ["a", "b"])
    with pytest.raises(ValueError, match="as many predictions as labels"):
        accuracy([], [])
    with pytest.raises(ValueError, match=r"predictions must hold one label per example.*\(2, 3\)"):
        accuracy(np.zeros((2, 3)), [0, 1])
    with pytest.raises(TypeError, match="class indices and the other class names"):
        accuracy([0, 1], ["a", "b"])
    with pytest.raises(TypeError, match="not one string"):
        accuracy("ab", ["a", "b"])


def test_per_class_recall_and_its_mean_hand_built():
    labels = ["cat"] * 4 + ["dog"] * 2
    preds = ["cat", "cat", "cat", "dog", "cat", "dog"]
    recalls = per_class_recall(preds, labels)
    assert list(recalls) == ["cat", "dog"]
    assert recalls["cat"] == 0.75 and recalls["cat"].n == 4
    assert recalls["dog"] == 0.5 and recalls["dog"].n == 2
    assert mean_per_class_recall(preds, labels) == pytest.approx(0.625)  # accuracy is 4/6
    assert accuracy(preds, labels) == pytest.approx(4 / 6)


def test_top_k_accuracy_hand_built():
    scores = torch.tensor([[0.1, 0.7, 0.2],
                           [0.5, 0.3, 0.2],
                           [0.2, 0.3, 0.5]])
    targets = [1, 1, 0]  # ranks: 1st, 2nd, 3rd
    assert top_k_accuracy(scores, targets, 1) == pytest.approx(1 / 3)
    assert top_k_accuracy(scores, targets, 2) == pytest.approx(2 / 3)
    assert top_k_accuracy(scores.numpy(), np.array(targets), 3) == 1.0
    assert top_k_accuracy(scores, targets, 10) == 1.0  # k beyond the classes counts every class


def test_top_k_accuracy_at_one_equals_accuracy_of_argmax():
    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 4, (200, 6), generator=g).float()  # many ties
    targets = torch.randint(0, 6, (200,), generator=g)
    assert top_k_accuracy(scores, targets, 1) == accuracy(scores.argmax(dim=1), targets)


@pytest.mark.parametrize(("k", "error", "message"), [
    (2.9, TypeError, r"k must be a positive integer; k is 2.9 \(float\)"),
    (True, TypeError, r"k is True \(bool\)"),
    (0, ValueError, "k must be a positive integer; k is 0"),
    (-1, ValueError, "k is -1"),
])
def test_top_k_accuracy_rejects_bad_k(k, error, message):
    with pytest.raises(error, match=message):
        top_k_accuracy(torch.eye(3), [0, 1, 2], k)


def test_top_k_accuracy_bad_scores_and_targets():
    scores = torch.eye(3)
    scores[1, 2] = float("nan")
    with pytest.raises(ValueError, match=r"NaN or infinite scores in rows \[1\]"):
        top_k_accuracy(scores, [0, 1, 2])
    with pytest.raises(ValueError, match=r"targets \[2\] are outside the 3 classes"):
        top_k_accuracy(torch.eye(3), [0, 1, 3])
    with pytest.raises(ValueError, match="one class index per row"):
        top_k_accuracy(torch.eye(3), [0, 1])
    with pytest.raises(TypeError, match="integer class indices"):
        top_k_accuracy(torch.eye(3), [0.0, 1.0, 2.0])


def test_recall_at_k_values_are_estimates_over_the_queries():
    sim = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.7, 0.6]])
    got = recall_at_k(sim, [[0], [1], [1]], ks=(1, 2))
    assert got == {1: pytest.approx(2 / 3), 2: 1.0}
    assert got[1].n == 3 and (got[1].low, got[1].high) == wilson_interval(2, 3)
    assert recall_at_k(sim, [[0], [1], [1]], ks=1) == {1: pytest.approx(2 / 3)}  # one cut-off


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_recall_at_k_refuses_scores_without_a_rank(bad):
    # a NaN used to sort first and count as a hit
    sim = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.8, 0.1], [0.7, 0.6, 0.5], [0.1, 0.2, 0.3]])
    sim[1, 2] = bad
    sim[3, 0] = bad
    with pytest.raises(ValueError, match=r"similarity has NaN or infinite scores in query rows \[1, 3\]"):
        recall_at_k(sim, [[0], [2], [1], [0]], ks=(1,))


@pytest.mark.parametrize(("ks", "error", "message"), [
    ((2.9,), TypeError, r"ks must be positive integers; ks\[0\] is 2.9 \(float\)"),
    ((1, True), TypeError, r"ks\[1\] is True \(bool\)"),
    ((1, 0), ValueError, r"ks must be positive integers; ks\[1\] is 0"),
    ((-2,), ValueError, r"ks\[0\] is -2"),
    ((), ValueError, "ks is empty"),
    ("5", TypeError, "ks must be a list of positive integers"),
])
def test_recall_at_k_rejects_bad_cutoffs(ks, error, message):
    with pytest.raises(error, match=message):
        recall_at_k(torch.eye(3), [[0], [1], [2]], ks=ks)


def test_recall_at_k_accepts_numpy_integer_cutoffs():
    assert recall_at_k(torch.eye(3), [[0], [1], [2]], ks=np.array([1, 2])) == {1: 1.0, 2: 1.0}


# ---- the tie rule: highest score first, equal scores by lower index --------------------------

def test_top_k_breaks_ties_towards_the_lower_index():
    scores = torch.tensor([[1.0, 3.0, 3.0, 2.0, 3.0, 1.0],
                           [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
                           [5.0, 1.0, 5.0, 1.0, 1.0, 9.0]])
    values, indices = top_k(scores, 2)
    assert indices.tolist() == [[1, 2], [0, 1], [5, 0]]
    assert values.tolist() == [[3.0, 3.0], [0.0, 0.0], [9.0, 5.0]]
    assert top_k(scores, 4)[1].tolist() == [[1, 2, 4, 3], [0, 1, 2, 3], [5, 0, 2, 1]]


def test_top_k_equals_a_stable_descending_sort_on_heavily_tied_scores():
    g = torch.Generator().manual_seed(1)
    for n in (7, 64, 3000):  # small and large rows: torch.topk changes algorithm with size
        scores = torch.randint(0, 5, (40, n), generator=g).float()
        for k in {1, 3, min(n, 50), n}:
            values, indices = top_k(scores, k)
            want = np.argsort(-scores.numpy(), axis=1, kind="stable")[:, :k]
            assert indices.tolist() == want.tolist()
            assert torch.equal(values, scores.gather(1, indices))


def test_top_k_bad_input():
    with pytest.raises(ValueError, match="2-D"):
        top_k(torch.ones(3), 1)
    with pytest.raises(ValueError, match=r"between 1 and the number of candidates \(3\)"):
        top_k(torch.ones(2, 3), 4)
    with pytest.raises(TypeError, match=r"k must be an integer, got 2.9 \(float\)"):
        top_k(torch.ones(2, 3), 2.9)  # type: ignore[arg-type]


def test_every_ranking_uses_the_same_tie_rule(monkeypatch):
    """recall@k, top-k accuracy and index search agree when a tie straddles the k-th place."""
    from course import EmbeddingIndex, retrieval

    # candidates 1, 2 and 3 are the same vector, so every query scores them exactly equally
    candidates = torch.tensor([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.6, 0.8]])
    queries = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    sim = queries @ candidates.T  # [[0, 1, 1, 1, .6], [.8, .6, .6, .6, 1]]
    want = [[1, 2, 3], [4, 0, 1]]  # query 1: candidates 2 and 3 tie with 1 but rank after it
    assert top_k(sim, 3)[1].tolist() == want
    for chunk in (10**9, 1):  # one chunk, and one candidate per chunk (the merge path)
        monkeypatch.setattr(retrieval, "_CHUNK_BYTES", chunk)
        assert EmbeddingIndex(candidates).search(queries, k=3).indices.tolist() == want
    assert recall_at_k(sim, [[3], [2]], ks=(2, 3, 4)) == {2: 0.0, 3: 0.5, 4: 1.0}
    assert top_k_accuracy(sim, [3, 2], 3) == 0.5 and top_k_accuracy(sim, [2, 1], 3) == 1.0
    assert top_k_accuracy(sim, [1, 4], 1) == 1.0  # = argmax, the first maximum


def test_zero_shot_classifier_topk_uses_the_tie_rule(pocket):
    from course import ZeroShotClassifier

    # give classes 0 and 2 the same class embedding, so every image scores them exactly equally
    classifier = ZeroShotClassifier(pocket, ["red circle", "blue square", "green star"])
    classifier.class_embeds[2] = classifier.class_embeds[0]
    embeds = classifier.class_embeds[[0]].clone()
    assert classifier.topk(embeds, k=2).indices.tolist() == [[0, 2]]
    assert classifier.predict(embeds) == ["red circle"]
    assert metrics.zero_shot_accuracy(classifier, embeds, ["red circle"]) == 1.0
    assert metrics.zero_shot_accuracy(classifier, embeds, ["green star"]) == 0.0


def test_zero_shot_accuracy_equals_predictions_and_checks_labels(pocket):
    from course import ZeroShotClassifier, encode_images
    from course.data import shapes

    data = shapes.generate(60, seed=3)
    embeds = encode_images(pocket, data.images)
    classifier = ZeroShotClassifier(pocket, shapes.class_names())
    labels = [lab.classname for lab in data.labels]
    got = metrics.zero_shot_accuracy(classifier, embeds, labels)
    assert got == accuracy(classifier.predict(embeds), labels) and got.n == 60
    assert got == metrics.zero_shot_accuracy(classifier, embeds, classifier.label_indices(labels))
    # one home: the metrics name, the method and evaluate's top-1 are the same computation
    assert got == classifier.accuracy(embeds, labels) == classifier.evaluate(embeds, labels)["top1"]
    assert classifier.accuracy(embeds, labels, confidence=0.5).high < got.high
    with pytest.raises(ValueError, match="not one of the classnames"):
        metrics.zero_shot_accuracy(classifier, embeds, ["red circel"] * 60)
    with pytest.raises(ValueError, match="60 images but 2 labels"):
        metrics.zero_shot_accuracy(classifier, embeds, labels[:2])


# --- modality gap (Liang et al. 2022) ---------------------------------------------------------

def test_modality_gap_equals_the_papers_definition() -> None:
    rng = np.random.default_rng(0)
    img = rng.normal(size=(40, 16)) + 2.0 * np.eye(16)[0]
    txt = rng.normal(size=(25, 16)) - 1.5 * np.eye(16)[1]
    centre_i = (img / np.linalg.norm(img, axis=1, keepdims=True)).mean(axis=0)
    centre_t = (txt / np.linalg.norm(txt, axis=1, keepdims=True)).mean(axis=0)
    expected = float(np.linalg.norm(centre_i - centre_t))
    assert metrics.modality_gap(img, txt) == pytest.approx(expected, rel=1e-12)
    assert metrics.modality_gap(torch.tensor(img, dtype=torch.float32),
                                torch.tensor(txt, dtype=torch.float32)) == pytest.approx(expected, rel=1e-5)
    vec = metrics.modality_gap_vector(img, txt)
    assert np.allclose(vec.numpy(), centre_i - centre_t)


def test_modality_gap_hand_built_cases() -> None:
    e = np.eye(3)
    assert metrics.modality_gap(e[[0, 0]], 5 * e[[1, 1, 1]]) == pytest.approx(math.sqrt(2))
    assert metrics.modality_gap(e[[0]], -e[[0]]) == pytest.approx(2.0)
    assert metrics.modality_gap(e, 3 * e) == pytest.approx(0.0, abs=1e-12)
    # scale does not matter (rows are normalised), a shared rotation does not either
    rng = np.random.default_rng(1)
    img, txt = rng.normal(size=(10, 3)) + 1, rng.normal(size=(12, 3)) - 1
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    assert metrics.modality_gap(img @ q, 7 * txt @ q) == pytest.approx(metrics.modality_gap(img, txt))


@pytest.mark.parametrize(("img", "txt", "error", "match"), [
    (np.ones((3, 4)), np.ones((3, 5)), ValueError, "sizes differ"),
    (np.ones(4), np.ones((3, 4)), ValueError, "image_embeds must be a non-empty 2-D"),
    (np.ones((3, 4)), np.zeros((2, 4)), ValueError, "all-zero rows"),
    (np.ones((3, 4)), np.array([[1.0, np.nan, 0, 0]]), ValueError, "NaN"),
])
def test_modality_gap_rejects_bad_input(img, txt, error, match) -> None:
    with pytest.raises(error, match=match):
        metrics.modality_gap(img, txt)


def test_recall_at_k_refuses_indices_that_are_not_whole_numbers():
    import numpy as np
    import torch

    from course.metrics import recall_at_k

    s = np.array([[0.1, 0.9], [0.8, 0.2]])
    with pytest.raises(TypeError, match=r"positives\[0\] holds 0.5, not a whole-number index"):
        recall_at_k(s, [[0.5], [0]], ks=1)  # it was read as candidate 0
    with pytest.raises(TypeError, match="holds True"):
        recall_at_k(s, [[True], [0]], ks=1)
    with pytest.raises(TypeError, match="list of candidate indices, got str"):
        recall_at_k(s, ["1", [0]], ks=1)
    assert float(recall_at_k(s, [[1.0], [np.int64(0)]], ks=1)[1]) == 1.0
    assert float(recall_at_k(s, [torch.tensor(1), [0]], ks=1)[1]) == 1.0
