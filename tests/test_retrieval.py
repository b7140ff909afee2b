"""EmbeddingIndex against brute force; save/load; recall@k on hand-built cases; clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import course.retrieval
from course import EmbeddingIndex, encode_images, recall_at_k
from course.data import shapes


def _random(n: int, d: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def _brute_force(index_embeds: torch.Tensor, queries: torch.Tensor, k: int):
    scores = F.normalize(queries, dim=1) @ F.normalize(index_embeds, dim=1).T
    order = scores.argsort(dim=1, descending=True)[:, :k]
    return scores.gather(1, order), order


@pytest.mark.parametrize("chunk_bytes", [None, 4096])  # 4 KB forces many chunks and merges
def test_search_equals_brute_force(monkeypatch, chunk_bytes):
    if chunk_bytes:
        monkeypatch.setattr(course.retrieval, "_CHUNK_BYTES", chunk_bytes)
    embeds, queries = _random(3000), _random(7, seed=1)
    result = EmbeddingIndex(embeds).search(queries, k=10)
    scores, order = _brute_force(embeds, queries, 10)
    assert torch.equal(result.indices, order)
    torch.testing.assert_close(result.scores, scores)


def test_float16_storage_halves_memory_and_keeps_results(monkeypatch):
    monkeypatch.setattr(course.retrieval, "_CHUNK_BYTES", 64 * 1024)
    embeds, queries = _random(2000), _random(20, seed=1)
    full = EmbeddingIndex(embeds)
    half = EmbeddingIndex(embeds, dtype=torch.float16)
    assert half.nbytes * 2 == full.nbytes == 2000 * 32 * 4
    a, b = full.search(queries, 5), half.search(queries, 5)
    assert b.scores.dtype == torch.float32
    torch.testing.assert_close(a.scores, b.scores, atol=2e-3, rtol=0)
    assert (a.indices[:, 0] == b.indices[:, 0]).float().mean() >= 0.9


def test_k_is_clipped_and_one_query_is_a_batch_of_one():
    index = EmbeddingIndex(_random(4), items=["a", "b", "c", "d"])
    result = index.search(_random(1, seed=2)[0], k=10)
    assert result.indices.shape == (1, 4)
    assert sorted(result.indices[0].tolist()) == [0, 1, 2, 3]
    assert result.items is not None and sorted(result.items[0]) == ["a", "b", "c", "d"]


def test_items_follow_indices():
    embeds = torch.eye(5, 8)
    index = EmbeddingIndex(embeds, items=[f"item {i}" for i in range(5)])
    result = index.search(embeds[[3, 1]] + 0.01, k=1)
    assert result.indices.flatten().tolist() == [3, 1]
    assert result.items == [["item 3"], ["item 1"]]
    torch.testing.assert_close(result.scores[:, 0], torch.ones(2), atol=1e-3, rtol=0)


def test_add_equals_building_at_once():
    embeds, queries = _random(500), _random(5, seed=1)
    items = list(range(500))
    grown = EmbeddingIndex(torch.empty(0, 32), items=[])
    for lo in range(0, 500, 170):
        grown.add(embeds[lo:lo + 170], items=items[lo:lo + 170])
    once = EmbeddingIndex(embeds, items=items)
    assert len(grown) == 500
    a, b = grown.search(queries, 7), once.search(queries, 7)
    assert torch.equal(a.indices, b.indices) and a.items == b.items


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_save_load_round_trip_without_pickle(tmp_path, dtype):
    items = [{"path": f"img{i}.png", "caption": "a red circle"} for i in range(50)]
    index = EmbeddingIndex(_random(50), items=items, dtype=dtype)
    folder = index.save(tmp_path / "index")
    assert sorted(p.name for p in folder.iterdir()) == ["embeddings.safetensors", "index.json"]
    assert json.loads((folder / "index.json").read_text())["items"] == items
    loaded = EmbeddingIndex.load(folder)
    assert len(loaded) == 50 and loaded.dtype == dtype and loaded.items == items
    q = _random(3, seed=4)
    a, b = index.search(q, 5), loaded.search(q, 5)
    assert torch.equal(a.indices, b.indices) and a.items == b.items


def test_save_refuses_items_json_cannot_hold(tmp_path):
    index = EmbeddingIndex(_random(3), items=["ok", object(), "ok"])
    with pytest.raises(TypeError, match=r"items\[1\].*JSON"):
        index.save(tmp_path / "bad")
    assert not (tmp_path / "bad").exists()  # nothing half-written


def test_load_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a saved EmbeddingIndex"):
        EmbeddingIndex.load(tmp_path)


def test_bad_inputs_give_clear_errors():
    index = EmbeddingIndex(_random(10))
    with pytest.raises(ValueError, match="queries are 16-d but the index holds 32-d"):
        index.search(_random(2, d=16))
    with pytest.raises(ValueError, match="index is empty"):
        EmbeddingIndex(torch.empty(0, 32)).search(_random(1))
    with pytest.raises(ValueError, match="new embeddings are 8-d"):
        index.add(_random(2, d=8))
    with pytest.raises(ValueError, match="built without items"):
        index.add(_random(2), items=["a", "b"])
    with pytest.raises(ValueError, match="3 items for 10 embeddings"):
        EmbeddingIndex(_random(10), items=["a", "b", "c"])
    with pytest.raises(ValueError, match="keeps an item"):
        EmbeddingIndex(_random(2), items=["a", "b"]).add(_random(1))
    with pytest.raises(ValueError, match="2-D"):
        EmbeddingIndex(torch.zeros(3, 4, 5))
    with pytest.raises(ValueError, match="k must be"):
        index.search(_random(1), k=0)
    with pytest.raises(ValueError, match="dtype"):
        EmbeddingIndex(_random(2), dtype=torch.int8)


def test_image_search_finds_each_image_itself(pocket):
    data = shapes.generate(30, seed=8)
    index = EmbeddingIndex(encode_images(pocket, data.images), items=data.captions)
    result = index.search_image(pocket, data.images[:5], k=3)
    assert result.indices[:, 0].tolist() == [0, 1, 2, 3, 4]
    torch.testing.assert_close(result.scores[:, 0], torch.ones(5), atol=1e-4, rtol=0)
    text = index.search_text(pocket, ["a red circle"], k=30)
    assert sorted(text.indices[0].tolist()) == list(range(30))


# recall@k ----------------------------------------------------------------------------------

SIM = torch.tensor([[0.9, 0.1, 0.5],
                    [0.2, 0.3, 0.8],
                    [0.1, 0.7, 0.6]])


def test_recall_hand_built():
    # query 0: its positive ranks 1st; query 1: 3rd; query 2: 2nd
    got = recall_at_k(SIM, [[0], [0], [2]], ks=(1, 2, 3))
    assert got == pytest.approx({1: 1 / 3, 2: 2 / 3, 3: 1.0})


def test_recall_several_captions_per_image():
    # 2 images x 2 captions each; captions 0,1 belong to image 0, captions 2,3 to image 1.
    image_to_text = torch.tensor([[0.1, 0.9, 0.8, 0.2],   # best caption is its own (1)
                                  [0.9, 0.1, 0.3, 0.8]])  # own captions rank 3rd and 2nd
    positives = [[0, 1], [2, 3]]
    assert recall_at_k(image_to_text, positives, ks=(1, 2)) == pytest.approx({1: 0.5, 2: 1.0})
    # text -> image: each caption has its one image; every caption against both images.
    text_to_image = image_to_text.T
    assert recall_at_k(text_to_image, [[0], [0], [1], [1]], ks=(1, 2)) == pytest.approx(
        {1: 0.5, 2: 1.0})  # captions 1 and 3 pick their image first, 0 and 2 do not


def test_recall_boolean_matrix_and_sets_agree_with_lists():
    mask = torch.tensor([[True, False, True], [False, False, True], [False, True, False]])
    lists = [[0, 2], [2], [1]]
    assert recall_at_k(SIM, mask, ks=(1, 2)) == recall_at_k(SIM, lists, ks=(1, 2))
    assert recall_at_k(SIM.numpy(), [set(x) for x in lists], ks=(1,)) == recall_at_k(
        SIM, lists, ks=(1,))
    assert recall_at_k(SIM, lists, ks=(1,)) == {1: 1.0}


def test_recall_k_beyond_n_is_clipped():
    assert recall_at_k(SIM, [[0], [0], [2]], ks=(1, 10)) == pytest.approx({1: 1 / 3, 10: 1.0})


def test_recall_matches_rank_definition_on_random_data():
    g = torch.Generator().manual_seed(0)
    sim = torch.rand(40, 60, generator=g)
    positives = [torch.randperm(60, generator=g)[: 1 + q % 3].tolist() for q in range(40)]
    got = recall_at_k(sim, positives, ks=(1, 5, 10))
    for k in (1, 5, 10):
        hits = []
        for q in range(40):
            best = max(sim[q, j].item() for j in positives[q])
            rank = int((sim[q] > best).sum())  # how many candidates beat the best positive
            hits.append(rank < k)
        assert got[k] == pytest.approx(np.mean(hits))


def test_recall_bad_inputs():
    with pytest.raises(ValueError, match=r"queries \[1\] have no positives"):
        recall_at_k(SIM, [[0], [], [2]])
    with pytest.raises(ValueError, match="2 queries but similarity has 3"):
        recall_at_k(SIM, [[0], [1]])
    with pytest.raises(ValueError, match="index 3, outside"):
        recall_at_k(SIM, [[0], [3], [2]])
    with pytest.raises(ValueError, match=r"shape \(2, 3\)"):
        recall_at_k(SIM, torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="matrix"):
        recall_at_k(SIM[0], [[0]])
    with pytest.raises(ValueError, match="ks must be positive"):
        recall_at_k(SIM, [[0], [0], [2]], ks=(0,))
