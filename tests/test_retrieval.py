"""EmbeddingIndex against brute force; save/load; recall@k on hand-built cases; clear errors."""

from __future__ import annotations

import json
import warnings

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
    assert sorted(p.name for p in folder.iterdir()) == ["index.safetensors"]  # one file
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


# bad input: vectors, k, saved folders --------------------------------------------------------


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_rows_are_refused_and_named(bad):
    embeds = _random(6)
    embeds[2, 5] = bad
    embeds[4, 0] = bad
    with pytest.raises(ValueError, match=r"embeddings: row\(s\) \[2, 4\] contain NaN or infinite"):
        EmbeddingIndex(embeds)
    index = EmbeddingIndex(_random(6))
    with pytest.raises(ValueError, match=r"new embeddings: row\(s\) \[2, 4\]"):
        index.add(embeds)
    assert len(index) == 6  # nothing half-added
    with pytest.raises(ValueError, match=r"queries: row\(s\) \[1\] contain NaN"):
        index.search(embeds[[0, 2]])
    with pytest.raises(ValueError, match=r"queries: row\(s\) \[0\]"):
        index.search(embeds[2])  # one (D,) query is row 0


def test_all_zero_rows_are_refused_and_named():
    embeds = _random(5)
    embeds[3] = 0
    with pytest.raises(ValueError, match=r"row\(s\) \[3\] are all zeros"):
        EmbeddingIndex(embeds)
    with pytest.raises(ValueError, match=r"queries: row\(s\) \[0\] are all zeros"):
        EmbeddingIndex(_random(5)).search(torch.zeros(32))


def test_many_bad_rows_are_summarised():
    embeds = _random(40)
    embeds[::2] = float("nan")
    with pytest.raises(ValueError, match=r"\[0, 2, 4, 6, 8, 10, 12, 14, 16, 18, \.\.\. \(20 in all"):
        EmbeddingIndex(embeds)


def test_extreme_but_finite_rows_are_normalised_exactly():
    direction = torch.tensor([[3.0, 4.0, 0.0]], dtype=torch.float64)
    expected = (direction / 5).float()
    for scale, dtype in [(1e30, torch.float32), (1e-30, torch.float32),
                         (1e300, torch.float64), (1e-300, torch.float64)]:
        index = EmbeddingIndex((direction * scale).to(dtype))  # norms over/underflow float32
        torch.testing.assert_close(index.embeddings, expected, msg=f"scale {scale}")
        result = index.search((direction * scale).to(dtype), k=1)
        torch.testing.assert_close(result.scores, torch.ones(1, 1), msg=f"scale {scale}")


def test_wrong_shapes_and_types_are_clear():
    index = EmbeddingIndex(_random(4))
    with pytest.raises(ValueError, match=r"2-D.*\(32,\).*x\[None\]"):
        EmbeddingIndex(_random(1)[0])
    with pytest.raises(ValueError, match=r"2-D.*\(2, 1, 32\)"):
        index.add(_random(2)[:, None])
    with pytest.raises(ValueError, match=r"one \(D,\) vector or a \(Q, D\) matrix.*\(1, 2, 32\)"):
        index.search(_random(2)[None])
    with pytest.raises(ValueError, match=r"shape \(\)"):
        index.search(torch.tensor(1.0))
    with pytest.raises(TypeError, match="floating point.*int64"):
        EmbeddingIndex(torch.ones(2, 4, dtype=torch.int64))
    with pytest.raises(TypeError, match="floating point.*bool"):
        index.search(torch.ones(32, dtype=torch.bool))
    with pytest.raises(TypeError, match="tensor or array of numbers.*str"):
        EmbeddingIndex(["a red circle", "a blue square"])
    with pytest.raises(TypeError, match="tensor or array of numbers"):
        EmbeddingIndex([[1.0, 2.0], [3.0]])  # ragged
    with pytest.raises(ValueError, match="the index is empty"):
        EmbeddingIndex(torch.empty(0, 32)).search(_random(1))
    # plain lists and numpy arrays of numbers are fine, and agree with tensors
    q = _random(1, seed=3)[0]
    assert torch.equal(index.search(q.tolist(), 2).indices, index.search(q.numpy(), 2).indices)


@pytest.mark.parametrize("k", [True, 2.9, 2.0, "3", None, np.float32(2)])
def test_k_must_be_a_whole_number(k):
    with pytest.raises(TypeError, match="k must be a whole number"):
        EmbeddingIndex(_random(5)).search(_random(1), k=k)


@pytest.mark.parametrize("k", [0, -1, np.int64(0)])
def test_k_must_be_positive(k):
    with pytest.raises(ValueError, match="k must be at least 1"):
        EmbeddingIndex(_random(5)).search(_random(1), k=k)


def test_integer_k_of_any_integer_type_works():
    index = EmbeddingIndex(_random(5))
    expected = index.search(_random(1), k=3).indices
    for k in (np.int64(3), torch.tensor(3)):
        assert torch.equal(index.search(_random(1), k=k).indices, expected)


def _saved(tmp_path, n=5, dtype=torch.float32):
    """A folder in the two-file format of earlier versions (format 1), which load still reads:
    its damage tests below edit one file or the other."""
    from safetensors.torch import save_file

    items = [f"item {i}" for i in range(n)]
    index = EmbeddingIndex(_random(n), items=items, dtype=dtype)
    folder = tmp_path / "index"
    folder.mkdir()
    save_file({"embeddings": index.embeddings}, str(folder / "embeddings.safetensors"))
    (folder / "index.json").write_text(json.dumps(
        {"format": 1, "dim": index.dim, "dtype": str(dtype), "count": n, "items": items}))
    assert EmbeddingIndex.load(folder).items == items
    return folder


@pytest.mark.parametrize("keep", [0, 7, 50, -10])
def test_load_truncated_tensor_file_names_it(tmp_path, keep):
    folder = _saved(tmp_path)
    path = folder / "embeddings.safetensors"
    path.write_bytes(path.read_bytes()[:keep])
    with pytest.raises(ValueError, match=r"embeddings\.safetensors is damaged or truncated"):
        EmbeddingIndex.load(folder)


@pytest.mark.parametrize("text", ["{not json", "", '{"count": 5, "items": [1, 2', b"\xff\xfe{}"])
def test_load_broken_json_names_it(tmp_path, text):
    folder = _saved(tmp_path)
    meta = folder / "index.json"
    meta.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ValueError, match=r"index\.json is damaged: it is not valid JSON"):
        EmbeddingIndex.load(folder)


def _edit_meta(folder, **changes):
    meta = json.loads((folder / "index.json").read_text())
    meta.update(changes)
    (folder / "index.json").write_text(json.dumps(meta))


@pytest.mark.parametrize(("changes", "message"), [
    ({"items": ["a", "b"]}, "lists 2 items for 5 embeddings"),
    ({"items": "abcde"}, "'items' must be a list or null"),
    ({"count": 7}, "are 5 x 32 but index.json says 7 x 32"),
    ({"dim": 16}, "are 5 x 32 but index.json says 5 x 16"),
    ({"count": "5"}, "'count' must be a whole number"),
    ({"format": 3}, "format 3.*upgrade course"),
])
def test_load_refuses_files_that_disagree(tmp_path, changes, message):
    folder = _saved(tmp_path)
    _edit_meta(folder, **changes)
    with pytest.raises(ValueError, match=message):
        EmbeddingIndex.load(folder)


def test_load_refuses_metadata_of_something_else(tmp_path):
    folder = _saved(tmp_path)
    (folder / "index.json").write_text("[1, 2, 3]")
    with pytest.raises(ValueError, match="not the metadata of a saved EmbeddingIndex"):
        EmbeddingIndex.load(folder)


def _write_tensor(folder, tensor, key="embeddings"):
    from safetensors.torch import save_file

    save_file({key: tensor}, str(folder / "embeddings.safetensors"))


@pytest.mark.parametrize(("tensor", "message"), [
    (torch.ones(5, 32, dtype=torch.int64), "torch.int64 embeddings"),
    (torch.ones(5, 32, dtype=torch.uint8), "torch.uint8 embeddings"),
    (torch.ones(5, 32, dtype=torch.bool), "torch.bool embeddings"),
    (torch.ones(5), r"embeddings of shape \(5,\), not a 2-D"),
    (torch.ones(5, 4, 8), r"embeddings of shape \(5, 4, 8\), not a 2-D"),
])
def test_load_refuses_tensors_an_index_cannot_hold(tmp_path, tensor, message):
    folder = _saved(tmp_path)
    _write_tensor(folder, tensor)
    with pytest.raises(ValueError, match=r"embeddings\.safetensors holds " + message):
        EmbeddingIndex.load(folder)


def test_load_refuses_non_finite_and_zero_rows(tmp_path):
    folder = _saved(tmp_path)
    embeds = F.normalize(_random(5), dim=1)
    embeds[3, 1] = float("nan")
    _write_tensor(folder, embeds)
    with pytest.raises(ValueError, match=r"embeddings\.safetensors: row\(s\) \[3\] contain NaN"):
        EmbeddingIndex.load(folder)
    embeds[3] = 0
    _write_tensor(folder, embeds)
    with pytest.raises(ValueError, match=r"row\(s\) \[3\] are all zeros"):
        EmbeddingIndex.load(folder)
    _write_tensor(folder, F.normalize(_random(5), dim=1), key="vectors")
    with pytest.raises(ValueError, match=r"no 'embeddings' tensor \(it has \['vectors'\]\)"):
        EmbeddingIndex.load(folder)


def test_load_renormalises_rows_that_are_not_unit_length_with_a_warning(tmp_path):
    folder = _saved(tmp_path)
    embeds = _random(5)  # norms around sqrt(32), as another program might store them
    _write_tensor(folder, embeds)
    with pytest.warns(UserWarning, match="5 of 5 embeddings are not unit length.*re-normalised"):
        loaded = EmbeddingIndex.load(folder)
    torch.testing.assert_close(loaded.embeddings, EmbeddingIndex(embeds).embeddings)
    q = _random(2, seed=9)
    assert torch.equal(loaded.search(q, 5).indices, EmbeddingIndex(embeds).search(q, 5).indices)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_load_stores_other_float_types_as_float32(tmp_path, dtype):
    folder = _saved(tmp_path)
    embeds = F.normalize(_random(5), dim=1)
    _write_tensor(folder, embeds.to(dtype))
    loaded = EmbeddingIndex.load(folder)
    assert loaded.dtype == loaded.embeddings.dtype == torch.float32
    torch.testing.assert_close(loaded.embeddings, embeds.to(dtype).float())


def test_save_load_round_trip_is_exact_and_silent(tmp_path):
    for dtype in (torch.float32, torch.float16):
        index = EmbeddingIndex(_random(20), items=list(range(20)), dtype=dtype)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # float16 rounding must not count as "not unit"
            loaded = EmbeddingIndex.load(index.save(tmp_path / str(dtype)))
        assert torch.equal(loaded.embeddings, index.embeddings)
    empty = EmbeddingIndex(torch.empty(0, 8), items=[]).save(tmp_path / "empty")
    assert len(EmbeddingIndex.load(empty)) == 0


def test_load_and_save_name_missing_or_wrong_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        EmbeddingIndex.load(tmp_path / "nowhere")
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileNotFoundError, match="is a file, not a folder"):
        EmbeddingIndex.load(tmp_path / "file")
    with pytest.raises(FileExistsError, match="is a file"):
        EmbeddingIndex(_random(2)).save(tmp_path / "file")
    folder = _saved(tmp_path)
    (folder / "index.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"not a saved EmbeddingIndex \(no index\.json\)"):
        EmbeddingIndex.load(folder)


# -- saving is one step: a kill or a concurrent reader never sees a mix --------------------------

_WRITER = """
import sys, torch
from course import EmbeddingIndex
folder, rounds = sys.argv[1], int(sys.argv[2])
def make(tag, seed):
    g = torch.Generator().manual_seed(seed)
    return EmbeddingIndex(torch.randn(20000, 64, generator=g), items=[f"{tag}{i}" for i in range(20000)])
versions = [make("a", 1), make("b", 2)]
versions[0].save(folder)
print("ready", flush=True)
for r in range(rounds):
    versions[r % 2].save(folder)
"""


def _version(tag: str) -> torch.Tensor:
    seed = {"a": 1, "b": 2}[tag]
    g = torch.Generator().manual_seed(seed)
    return EmbeddingIndex(torch.randn(20000, 64, generator=g)).embeddings


def _assert_whole(loaded: EmbeddingIndex, expected: dict[str, torch.Tensor]) -> str:
    """The vectors are those of the save whose items came with them (no mix of two saves)."""
    tag = loaded.items[0][0]
    assert {item[0] for item in loaded.items} == {tag}
    assert torch.equal(loaded.embeddings, expected[tag])
    return tag


def _writer(tmp_path, rounds):
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path / "index"),
                                str(rounds)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "ready"
    return process


@pytest.mark.slow
def test_a_save_killed_at_any_moment_leaves_a_whole_index(tmp_path):
    import signal
    import time

    expected = {tag: _version(tag) for tag in "ab"}
    for delay in (0.0, 0.03, 0.07, 0.15, 0.3):
        process = _writer(tmp_path, 10_000)
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
        _assert_whole(EmbeddingIndex.load(tmp_path / "index"), expected)


@pytest.mark.slow
def test_a_reader_during_saves_gets_one_save_or_the_other(tmp_path):
    expected = {tag: _version(tag) for tag in "ab"}
    process = _writer(tmp_path, 60)
    seen = set()
    try:
        while process.poll() is None:
            seen.add(_assert_whole(EmbeddingIndex.load(tmp_path / "index"), expected))
    finally:
        process.kill()
        process.wait()
    assert seen  # loads happened while the other process saved
    _assert_whole(EmbeddingIndex.load(tmp_path / "index"), expected)


def test_a_save_that_dies_before_the_rename_leaves_the_old_index(tmp_path, monkeypatch):
    import os

    old = EmbeddingIndex(_random(5), items=list("abcde"))
    folder = old.save(tmp_path / "index")

    def die(*args):
        raise KeyboardInterrupt  # as if killed between writing and renaming

    monkeypatch.setattr(os, "replace", die)
    with pytest.raises(KeyboardInterrupt):
        EmbeddingIndex(_random(7, seed=3), items=list("abcdefg")).save(folder)
    monkeypatch.undo()
    loaded = EmbeddingIndex.load(folder)
    assert loaded.items == list("abcde") and torch.equal(loaded.embeddings, old.embeddings)
    assert sorted(p.name for p in folder.iterdir()) == ["index.safetensors"]  # no temp left


def test_a_new_save_wins_over_an_old_two_file_folder(tmp_path):
    folder = _saved(tmp_path)  # format 1: embeddings.safetensors + index.json
    EmbeddingIndex(_random(3, seed=8), items=["x", "y", "z"]).save(folder)
    assert EmbeddingIndex.load(folder).items == ["x", "y", "z"]


@pytest.mark.parametrize("keep", [0, 7, 50, -10])
def test_load_truncated_index_file_names_it(tmp_path, keep):
    folder = EmbeddingIndex(_random(5), items=list("abcde")).save(tmp_path / "index")
    path = folder / "index.safetensors"
    path.write_bytes(path.read_bytes()[:keep])
    with pytest.raises(ValueError, match=r"index\.safetensors is damaged or truncated"):
        EmbeddingIndex.load(folder)


def test_load_refuses_an_index_file_without_metadata(tmp_path):
    from safetensors.torch import save_file

    folder = tmp_path / "index"
    folder.mkdir()
    save_file({"embeddings": F.normalize(_random(5), dim=1)}, str(folder / "index.safetensors"))
    with pytest.raises(ValueError, match="holds no index metadata"):
        EmbeddingIndex.load(folder)


@pytest.mark.skipif(__import__("os").geteuid() == 0, reason="root writes into read-only folders")
def test_save_into_a_read_only_folder_says_so(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(OSError, match="cannot save the index in .*read-only"):
            EmbeddingIndex(_random(2)).save(folder)
    finally:
        folder.chmod(0o700)


# --- ApproximateIndex (FAISS IVF) ---------------------------------------------------------------

def _clustered(n: int, d: int = 64, clusters: int = 100, spread: float = 1.0,
               seed: int = 0) -> np.ndarray:
    """Points around random centres on the sphere, like embeddings of a dataset's many topics."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, d))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = centres[rng.integers(clusters, size=n)] + spread * rng.normal(size=(n, d)) / np.sqrt(d)
    return x.astype(np.float32)


@pytest.mark.parametrize(("clusters", "spread"), [(50, 1.5), (300, 1.0), (1000, 0.7)])
def test_approximate_index_defaults_reach_recall_095_on_clustered_data(clusters, spread):
    from course.retrieval import ApproximateIndex

    x = _clustered(20_300, clusters=clusters, spread=spread, seed=clusters)
    data, queries = x[:20_000], x[20_000:]
    index, exact = ApproximateIndex(data), EmbeddingIndex(data)
    assert index.nprobe < index.nlist  # really approximate: it skips most cells
    truth = exact.search(queries, 10).indices
    got = index.search(queries, 10).indices
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(truth.tolist(), got.tolist())])
    assert overlap >= 0.95
    assert index.recall_against(exact, queries, 10) == pytest.approx(overlap)
    index.nprobe = 1
    assert index.recall_against(exact, queries, 10) < overlap  # the dial does something


def test_approximate_index_returns_what_exact_search_returns():
    from course.retrieval import ApproximateIndex

    x = _clustered(3000, d=32, clusters=20, seed=4)
    items = [f"item {i}" for i in range(2900)]
    index = ApproximateIndex(x[:2900] * 3.0, items, nlist=16, nprobe=16)  # every cell: exact
    exact = EmbeddingIndex(x[:2900], items)
    got, want = index.search(torch.from_numpy(x[2900:]), k=7), exact.search(x[2900:], k=7)
    assert got.scores.shape == got.indices.shape == (100, 7)
    assert got.scores.dtype == torch.float32 and got.indices.dtype == torch.int64
    assert torch.allclose(got.scores, want.scores, atol=1e-5)  # cosines, rows normalised inside
    assert (got.indices == want.indices).float().mean() > 0.99  # only exact ties may swap
    assert got.items == [[items[j] for j in row] for row in got.indices.tolist()]
    one = index.search(x[2950], k=3)  # a single (D,) query is a batch of one
    assert one.indices.shape == (1, 3)
    assert index.search(x[:2], k=10_000).indices.shape == (2, 2900)  # k above N: all rows


def test_approximate_index_fills_every_column_when_the_probed_cells_are_small():
    from course.retrieval import ApproximateIndex

    x = _clustered(2000, d=16, clusters=40, spread=0.3, seed=5)
    index = ApproximateIndex(x, nlist=40, nprobe=1)
    got = index.search(x[:20], k=200)  # one cell holds ~50 rows: the rest come from a full search
    assert (got.indices >= 0).all() and index.nprobe == 1
    assert all(len(set(row)) == 200 for row in got.indices.tolist())
    assert torch.all(got.scores[:, :-1] >= got.scores[:, 1:] - 1e-6)  # best first


@pytest.mark.slow  # PQ trains 256 codes per sub-vector: seconds, more on a loaded machine
def test_approximate_index_with_product_quantization():
    from course.retrieval import ApproximateIndex

    x = _clustered(5200, d=32, clusters=30, seed=6)
    flat = ApproximateIndex(x[:5000], nlist=32, nprobe=32)
    pq = ApproximateIndex(x[:5000], nlist=32, nprobe=32, pq=8)
    assert pq.nbytes < flat.nbytes / 4 and "IVF-PQ8" in repr(pq)
    exact = EmbeddingIndex(x[:5000])
    r_flat, r_pq = flat.recall_against(exact, x[5000:]), pq.recall_against(exact, x[5000:])
    assert r_flat > 0.99 and 0.3 < r_pq < r_flat  # compressed codes lose some neighbours
    assert pq.search(x[5000:], 5).scores.shape == (200, 5)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"nlist": 0}, ValueError, "nlist"),
    ({"nlist": 5000}, ValueError, "nlist=5000"),
    ({"pq": 5}, ValueError, "divide"),
    ({"nprobe": 1.5}, TypeError, "nprobe"),
])
def test_approximate_index_rejects_bad_settings(kwargs, error, match):
    from course.retrieval import ApproximateIndex

    with pytest.raises(error, match=match):
        ApproximateIndex(_clustered(1000, d=16), **kwargs)


def test_approximate_index_rejects_bad_embeddings_and_queries():
    from course.retrieval import ApproximateIndex

    x = _clustered(500, d=16)
    bad = x.copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match="3"):
        ApproximateIndex(bad)
    index = ApproximateIndex(x)
    with pytest.raises(ValueError, match="16-d"):
        index.search(np.ones((2, 8), dtype=np.float32))
    with pytest.raises(ValueError, match="queries"):
        index.search(np.zeros((2, 16), dtype=np.float32))


def test_save_into_a_read_only_folder_is_one_clear_error(read_only_folder):
    import torch

    from course import retrieval
    from course.retrieval import EmbeddingIndex

    index = EmbeddingIndex(torch.eye(3))
    locked = read_only_folder(retrieval)
    with pytest.raises(PermissionError, match=r"cannot save the index in .*locked/idx: "
                                              "Permission denied"):
        index.save(locked / "idx")
    assert not (locked / "idx" / "embeddings.safetensors").exists()


# --- ApproximateIndex: add, save, load ----------------------------------------------------------

def test_approximate_add_equals_an_index_over_all_rows():
    from course.retrieval import ApproximateIndex

    x = _clustered(3100, d=32, clusters=20, seed=7)
    items = [f"row {i}" for i in range(3000)]
    index = ApproximateIndex(x[:1500], items[:1500], nlist=16)
    for lo in (1500, 2200):  # ids continue from len(index), as EmbeddingIndex.add's do
        index.add(x[lo:lo + 700] if lo == 1500 else x[lo:3000], items[lo:lo + 700]
                  if lo == 1500 else items[lo:3000])
    assert len(index) == 3000 and len(index.items) == 3000
    exact = EmbeddingIndex(x[:3000], items)
    assert index.recall_against(exact, x[3000:], 10) >= 0.95  # the default nprobe
    index.nprobe = index.nlist  # every cell: exactly the exact index's answer
    got, want = index.search(x[3000:], 10), exact.search(x[3000:], 10)
    assert torch.equal(got.indices, want.indices) and got.items == want.items
    assert torch.allclose(got.scores, want.scores, atol=1e-5)


def test_approximate_add_refuses_bad_rows_and_mismatched_items():
    from course.retrieval import ApproximateIndex

    x = _clustered(600, d=16)
    index = ApproximateIndex(x[:500])
    with pytest.raises(ValueError, match="16-d"):
        index.add(np.ones((3, 8), dtype=np.float32))
    bad = x[500:510].copy()
    bad[4, 2] = np.nan
    with pytest.raises(ValueError, match="4"):
        index.add(bad)
    with pytest.raises(ValueError, match="without items"):
        index.add(x[500:502], items=["a", "b"])
    assert len(index) == 500  # nothing was added by the refused calls
    index.add(np.zeros((0, 16), dtype=np.float32))  # an empty batch is a no-op
    with_items = ApproximateIndex(x[:500], list(range(500)))
    with pytest.raises(ValueError, match="pass items="):
        with_items.add(x[500:502])
    with pytest.raises(ValueError, match="2 items for 3"):
        with_items.add(x[500:503], items=[1, 2])
    assert len(with_items) == 500


def test_approximate_add_says_once_when_the_cells_are_outgrown():
    from course.retrieval import ApproximateIndex

    x = _clustered(8000, d=16, clusters=30, seed=9)
    index = ApproximateIndex(x[:1000])  # nlist chosen for 1,000 rows
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        index.add(x[1000:1900])  # nearly twice the size: its 25 cells still fit
    assert not index.retrain_advised
    with pytest.warns(UserWarning, match=r"chosen for about 1,000.*Build a new ApproximateIndex"):
        index.add(x[1900:6000])
    assert index.retrain_advised
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        index.add(x[6000:])  # said once, not at every add
    assert ApproximateIndex(x).retrain_advised is False  # rebuilt: cells fit again


@pytest.mark.parametrize("pq", [None, 4])
def test_approximate_save_load_round_trip(tmp_path, pq):
    from course.retrieval import ApproximateIndex

    x = _clustered(1300, d=16, clusters=20, seed=10)
    items = [{"id": i, "caption": f"c{i}"} for i in range(1200)]
    index = ApproximateIndex(x[:1200], items, nlist=12, nprobe=3, pq=pq)
    folder = index.save(tmp_path / "ann")
    assert sorted(p.name for p in folder.iterdir()) == ["approximate_index.safetensors"]
    loaded = ApproximateIndex.load(folder)
    assert repr(loaded) == repr(index)
    assert (loaded.nlist, loaded.nprobe, loaded.pq, loaded.built_for) == (12, 3, pq, 1200)
    got, want = loaded.search(x[1200:], 10), index.search(x[1200:], 10)
    assert torch.equal(got.indices, want.indices) and torch.equal(got.scores, want.scores)
    assert got.items == want.items
    loaded.add(x[1200:], [{"id": i} for i in range(1200, 1300)])  # it keeps growing after load
    loaded.nprobe = 12
    assert loaded.search(x[1250], 1).items == [[{"id": 1250}]]
    with open(folder / "approximate_index.safetensors", "rb") as file:
        assert b"pickle" not in file.read(200)  # safetensors: a JSON header, then raw bytes


def _approx_saved(tmp_path):
    from course.retrieval import ApproximateIndex

    return ApproximateIndex(_clustered(400, d=16), list(range(400)), nlist=4).save(tmp_path / "a")


@pytest.mark.parametrize("keep", [0, 7, 100, -5000, -1])
def test_approximate_load_of_a_truncated_file_names_it(tmp_path, keep):
    from course.retrieval import ApproximateIndex

    file = _approx_saved(tmp_path) / "approximate_index.safetensors"
    data = file.read_bytes()
    file.write_bytes(data[:keep % len(data)])
    with pytest.raises(ValueError, match=r"approximate_index\.safetensors.*(damaged|truncated)"):
        ApproximateIndex.load(file.parent)


def test_approximate_load_of_a_corrupted_file_names_the_damage(tmp_path):
    from course.retrieval import ApproximateIndex

    file = _approx_saved(tmp_path) / "approximate_index.safetensors"
    data = bytearray(file.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte among the FAISS bytes
    file.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="damaged: its FAISS bytes do not match the checksum"):
        ApproximateIndex.load(file.parent)


def test_approximate_load_refuses_other_folders_and_files(tmp_path):
    from safetensors.torch import save_file

    from course.retrieval import ApproximateIndex

    with pytest.raises(FileNotFoundError, match="does not exist"):
        ApproximateIndex.load(tmp_path / "nowhere")
    exact = EmbeddingIndex(_random(5)).save(tmp_path / "exact")
    with pytest.raises(FileNotFoundError, match="exact index.*EmbeddingIndex.load"):
        ApproximateIndex.load(exact)
    with pytest.raises(FileNotFoundError, match="ApproximateIndex.load"):
        EmbeddingIndex.load(_approx_saved(tmp_path))
    other = tmp_path / "other"
    other.mkdir()
    save_file({"weights": torch.ones(3)}, str(other / "approximate_index.safetensors"))
    with pytest.raises(ValueError, match="not written by ApproximateIndex.save"):
        ApproximateIndex.load(other)
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="needs a folder"):
        ApproximateIndex(_clustered(100, d=16)).save(tmp_path / "file")


def test_approximate_load_refuses_metadata_that_disagrees_with_faiss(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    from course.retrieval import ApproximateIndex

    file = _approx_saved(tmp_path) / "approximate_index.safetensors"
    with safe_open(str(file), framework="pt") as opened:
        tensors = {key: opened.get_tensor(key) for key in opened.keys()}  # noqa: SIM118 - not a dict
    meta = json.loads(bytes(tensors["meta"].numpy()).decode())
    meta["count"] = 399
    meta["items"] = meta["items"][:399]
    tensors["meta"] = torch.frombuffer(bytearray(json.dumps(meta).encode()), dtype=torch.uint8)
    save_file(tensors, str(file))
    with pytest.raises(ValueError, match="disagree"):
        ApproximateIndex.load(file.parent)


def test_approximate_save_into_a_read_only_folder_is_one_clear_error(read_only_folder):
    from course import retrieval
    from course.retrieval import ApproximateIndex

    index = ApproximateIndex(_clustered(100, d=16))
    locked = read_only_folder(retrieval)
    with pytest.raises(PermissionError, match=r"cannot save the index in .*locked/ann: "
                                              "Permission denied"):
        index.save(locked / "ann")


def test_an_approximate_save_that_dies_before_the_rename_leaves_the_old_index(tmp_path,
                                                                               monkeypatch):
    import os

    from course.retrieval import ApproximateIndex

    folder = _approx_saved(tmp_path)
    monkeypatch.setattr(os, "replace", lambda *args: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):  # as if killed between writing and renaming
        ApproximateIndex(_clustered(200, d=16, seed=3), list("x" * 200)).save(folder)
    monkeypatch.undo()
    assert ApproximateIndex.load(folder).items == list(range(400))
    assert sorted(p.name for p in folder.iterdir()) == ["approximate_index.safetensors"]


_APPROX_WRITER = """
import sys, numpy as np
from course.retrieval import ApproximateIndex
folder, rounds = sys.argv[1], int(sys.argv[2])
def make(tag, seed):
    x = np.random.default_rng(seed).normal(size=(20000, 64)).astype(np.float32)
    return ApproximateIndex(x, items=[f"{tag}{i}" for i in range(20000)], nlist=16, nprobe=16)
versions = [make("a", 1), make("b", 2)]
versions[0].save(folder)
print("ready", flush=True)
for r in range(rounds):
    versions[r % 2].save(folder)
"""


@pytest.mark.slow
def test_an_approximate_save_killed_at_any_moment_leaves_a_whole_index(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from course.retrieval import ApproximateIndex

    rows = {tag: np.random.default_rng(seed).normal(size=(20000, 64)).astype(np.float32)
            for tag, seed in (("a", 1), ("b", 2))}
    for delay in (0.0, 0.05, 0.15, 0.3):
        process = subprocess.Popen([sys.executable, "-c", _APPROX_WRITER, str(tmp_path / "ann"),
                                    "10000"], stdout=subprocess.PIPE, text=True)
        assert process.stdout.readline().strip() == "ready"
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
        loaded = ApproximateIndex.load(tmp_path / "ann")
        tag = loaded.items[0][0]
        assert {item[0] for item in loaded.items} == {tag}  # the items of one save
        got = loaded.search(rows[tag][:5], 1)  # and that save's vectors: each finds itself
        assert got.indices[:, 0].tolist() == [0, 1, 2, 3, 4]


def test_approximate_build_files_rows_as_faiss_add_does():
    """The cell-by-cell build (each list sized once) gives the lists FAISS's own add gives."""
    import faiss

    from course.retrieval import ApproximateIndex

    x = _clustered(6000, d=32, clusters=40, seed=11)
    index = ApproximateIndex(x[:4000], nlist=30, nprobe=3)
    index.add(x[4000:5800])
    faiss_built = faiss.clone_index(index._index)  # the same cells, filled by FAISS itself
    faiss_built.reset()
    faiss_built.add(np.ascontiguousarray(F.normalize(torch.from_numpy(x[:5800]), dim=1).numpy()))
    for cell in range(30):
        assert index._index.invlists.list_size(cell) == faiss_built.invlists.list_size(cell)
    queries = np.ascontiguousarray(F.normalize(torch.from_numpy(x[5800:]), dim=1).numpy())
    scores, ids = faiss_built.search(queries, 10)
    got = index.search(x[5800:], 10)
    assert np.array_equal(got.indices.numpy(), ids)
    assert np.allclose(got.scores.numpy(), scores, atol=1e-6)
