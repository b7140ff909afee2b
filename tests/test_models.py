"""load_clip: the pocket model, local folders, the offline-first hub path, and feature unwrapping."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import course
from course.models import POCKET_DIR, ModelLoadError, image_processor_class, unwrap_features

HUB_ID = "openai/clip-vit-base-patch32"


@pytest.fixture(scope="module")
def pocket():
    return course.load_clip("pocket")


def test_pocket_loads_by_name_in_eval_mode(pocket):
    from course.models import choose_device

    assert pocket.name == "pocket"
    assert pocket.device == choose_device()  # a GPU when there is one
    assert next(pocket.model.parameters()).device.type == pocket.device.type
    assert not pocket.model.training
    assert type(pocket.model).__name__ == "CLIPModel"
    assert isinstance(pocket.processor.image_processor, image_processor_class())
    assert type(pocket.processor.tokenizer).__name__.startswith("CLIPTokenizer")


def test_pocket_is_small():
    n = sum(p.numel() for p in course.load_clip("pocket").model.parameters())
    assert n <= 5_000_000
    assert (POCKET_DIR / "model.safetensors").stat().st_size <= 10 * 1024 * 1024
    assert not list(POCKET_DIR.glob("*.bin"))  # safetensors only, nothing pickled


def test_loading_shows_no_torchvision_fallback_warning():
    code = "import course; course.load_clip('pocket')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "torchvision" not in out.stderr + out.stdout
    assert "Warning" not in out.stderr


def test_pocket_loads_on_the_device_asked_for():
    on_cpu = course.load_clip("pocket", device="cpu")
    assert on_cpu.device == torch.device("cpu")
    assert {p.device.type for p in on_cpu.model.parameters()} == {"cpu"}


def test_copied_folder_loads_with_plain_transformers(tmp_path, pocket):
    from transformers import AutoProcessor, CLIPModel

    folder = tmp_path / "my-clip"
    shutil.copytree(POCKET_DIR, folder)
    model = CLIPModel.from_pretrained(folder)  # plain transformers: on the CPU
    processor = AutoProcessor.from_pretrained(folder)
    inputs = processor(text=["a red circle"], return_tensors="pt", padding=True, truncation=True)
    ours_on_cpu = course.load_clip("pocket", device="cpu")  # same device: an exact comparison
    with torch.inference_mode():
        plain = unwrap_features(model.get_text_features(**inputs))
        ours = unwrap_features(ours_on_cpu.model.get_text_features(**inputs))
    torch.testing.assert_close(plain, ours)

    again = course.load_clip(str(folder))
    assert again.name == str(folder)
    torch.testing.assert_close(again.model.logit_scale.cpu(), pocket.model.logit_scale.cpu())


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not hold a saved CLIP model"):
        course.load_clip(str(tmp_path / "nowhere"))


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **env}
    full_env.pop("HF_HUB_OFFLINE", None)
    full_env.update(env)
    # The timeout is only a guard against a hang, not a speed assertion.
    return subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True,
                          env=full_env, timeout=120)


def test_uncached_hub_id_without_network_fails_with_a_clear_message(tmp_path):
    # An endpoint that refuses connections stands in for "no internet", whatever this machine has.
    out = _run(f"import course; course.load_clip('{HUB_ID}')",
               HF_HOME=str(tmp_path), HF_ENDPOINT="http://127.0.0.1:9")
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()
    assert any("ModelNotAvailableError" in line for line in last)
    assert HUB_ID in out.stderr and "load_clip('pocket')" in out.stderr


def test_hf_hub_offline_is_respected(tmp_path):
    out = _run(f"import course; course.load_clip('{HUB_ID}')",
               HF_HOME=str(tmp_path), HF_HUB_OFFLINE="1")
    assert out.returncode != 0 and "ModelNotAvailableError" in out.stderr


def test_auto_falls_back_to_pocket_and_says_so(tmp_path):
    out = _run("import course; c = course.load_clip('auto'); print('NAME', c.name)",
               HF_HOME=str(tmp_path), HF_ENDPOINT="http://127.0.0.1:9")
    assert out.returncode == 0, out.stderr
    assert "pocket" in out.stdout and "NAME pocket" in out.stdout


def test_cached_hub_id_loads_offline_first(tmp_path):
    # Lay the pocket files out as the Hugging Face cache would hold a downloaded model.
    repo = tmp_path / "hub" / "models--course--pocket-mirror"
    snapshot = repo / "snapshots" / ("0" * 40)
    shutil.copytree(POCKET_DIR, snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    out = _run("import course; c = course.load_clip('course/pocket-mirror'); print('NAME', c.name)",
               HF_HOME=str(tmp_path), HF_ENDPOINT="http://127.0.0.1:9")
    assert out.returncode == 0, out.stderr
    assert "NAME course/pocket-mirror" in out.stdout


def test_unwrap_features_handles_v4_tensors_and_v5_outputs():
    t = torch.randn(2, 4)
    assert unwrap_features(t) is t
    assert unwrap_features(SimpleNamespace(pooler_output=t)) is t
    with pytest.raises(TypeError, match="cannot find embeddings"):
        unwrap_features(SimpleNamespace(last_hidden_state=t))


def test_choose_device_prefers_a_gpu_and_accepts_a_name(monkeypatch):
    from course.models import choose_device

    assert choose_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert choose_device().type in {"cpu", "mps"}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert choose_device() == torch.device("cuda")
    assert choose_device("cpu") == torch.device("cpu")  # asked for: even with a GPU


def test_pocket_dir_ships_inside_the_package():
    assert Path(course.__file__).parent in POCKET_DIR.parents


# bad model folders and devices ---------------------------------------------------------------


def _copy(tmp_path: Path, name: str = "clip") -> Path:
    folder = tmp_path / name
    shutil.copytree(POCKET_DIR, folder)
    return folder


@pytest.mark.parametrize("damage", ["head", "tail", "garbage", "empty"])
def test_corrupt_weights_name_the_file(tmp_path, damage):
    folder = _copy(tmp_path)
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes({"head": data[:1000], "tail": data[:-1000], "garbage": b"not weights",
                         "empty": b""}[damage])
    with pytest.raises(ModelLoadError, match=rf"{weights}: damaged or truncated.*Copy") as err:
        course.load_clip(str(folder))
    assert isinstance(err.value, ValueError)


def test_missing_tensors_would_be_random_so_they_are_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    folder = _copy(tmp_path)
    state = load_file(folder / "model.safetensors")
    del state["text_projection.weight"]
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ModelLoadError, match=r"lack 1 tensor\(s\) \(text_projection.weight\)"):
        course.load_clip(str(folder))


def test_weights_that_do_not_fit_the_config(tmp_path):
    folder = _copy(tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["projection_dim"] = 64
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="shapes in its weights do not match its config.json"):
        course.load_clip(str(folder))


@pytest.mark.parametrize(("config", "message"), [
    ({"model_type": "bert", "architectures": ["BertModel"]}, "describes a 'bert' model, not CLIP"),
    ({"model_type": "clip_vision_model"}, "describes a 'clip_vision_model' model, not CLIP"),
    ({"hidden_size": 128}, "a model without a model_type, not CLIP"),
    ([1, 2], "is not a model configuration"),
    ("{oops", "is damaged: it is not valid JSON"),
])
def test_config_of_another_model_is_refused_before_loading(tmp_path, monkeypatch, config, message):
    import transformers

    folder = _copy(tmp_path)
    text = config if isinstance(config, str) else json.dumps(config)
    (folder / "config.json").write_text(text)
    monkeypatch.setattr(transformers.CLIPModel, "from_pretrained", _must_not_load)
    with pytest.raises(ModelLoadError, match=rf"{folder / 'config.json'}.*{message}"):
        course.load_clip(str(folder))


@pytest.mark.parametrize(("remove", "message"), [
    (["model.safetensors"], r"no weights \(model.safetensors\)"),
    (["tokenizer.json"], r"no tokenizer \(tokenizer.json\)"),
    (["processor_config.json"], r"no image processor"),
    (["tokenizer.json", "model.safetensors"], "no weights .* and no tokenizer"),
])
def test_folder_missing_files_says_which(tmp_path, remove, message):
    folder = _copy(tmp_path)
    for name in remove:
        (folder / name).unlink()
    with pytest.raises(FileNotFoundError, match=rf"{folder} has a config.json but {message}"):
        course.load_clip(str(folder))


def test_damaged_tokenizer_file_is_named(tmp_path):
    folder = _copy(tmp_path)
    (folder / "tokenizer.json").write_text("{broken")
    with pytest.raises(ModelLoadError, match=rf"tokenizer files of {folder} are damaged"):
        course.load_clip(str(folder))


def test_tokenizer_without_vocabulary_or_too_many_tokens_is_refused(pocket):
    from course.models import _check_tokenizer

    class Tokenizer:
        all_special_tokens = ("<|startoftext|>", "<|endoftext|>")

        def __init__(self, vocab):
            self.vocab = vocab

        def get_vocab(self):
            return self.vocab

        def __len__(self):
            return len(self.vocab)

    empty = Tokenizer({"<|startoftext|>": 0, "<|endoftext|>": 1})
    with pytest.raises(ModelLoadError, match="has no vocabulary"):
        _check_tokenizer(empty, pocket.model, "here")
    huge = Tokenizer({f"t{i}": i for i in range(pocket.model.config.text_config.vocab_size + 1)})
    with pytest.raises(ModelLoadError, match="tokens but the model's text tower only"):
        _check_tokenizer(huge, pocket.model, "here")
    _check_tokenizer(pocket.processor.tokenizer, pocket.model, "here")  # the real one passes


def test_folder_paths_and_names(tmp_path):
    folder = _copy(tmp_path)
    assert course.load_clip(folder).name == str(folder)  # a Path works as well as a str
    with pytest.raises(FileNotFoundError, match="is a file"):
        course.load_clip(str(folder / "config.json"))
    with pytest.raises(ValueError, match="name is empty"):
        course.load_clip("")
    with pytest.raises(TypeError, match="got NoneType"):
        course.load_clip(None)


def _must_not_load(*args, **kwargs):
    raise AssertionError("the weights must not be loaded before the error")


@pytest.mark.parametrize(("device", "error", "message"), [
    ("gpu", ValueError, r"unknown device 'gpu' \(torch calls the GPU 'cuda'\)"),
    ("graphics", ValueError, "unknown device 'graphics'"),
    ("meta", ValueError, "device 'meta' cannot run a model"),
    (0, TypeError, "device must be a name"),
    ("cuda:99", ValueError, "cuda:99"),
])
def test_bad_devices_fail_before_loading(monkeypatch, device, error, message):
    import transformers

    monkeypatch.setattr(transformers.CLIPModel, "from_pretrained", _must_not_load)
    with pytest.raises(error, match=message):
        course.load_clip("pocket", device=device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:0", torch.device("cuda")])
def test_cuda_without_cuda_fails_before_loading(monkeypatch, device):
    import transformers

    monkeypatch.setattr(transformers.CLIPModel, "from_pretrained", _must_not_load)
    with pytest.raises(ValueError, match="CUDA is not available here.*device='cpu'"):
        course.load_clip("pocket", device=device)


@pytest.mark.skipif(course.models._mps_available(), reason="this machine has MPS")
def test_mps_without_mps_fails_before_loading(monkeypatch):
    import transformers

    monkeypatch.setattr(transformers.CLIPModel, "from_pretrained", _must_not_load)
    with pytest.raises(ValueError, match="'mps' .* not available here"):
        course.load_clip("pocket", device="mps")


def test_device_names_are_case_insensitive():
    from course.models import choose_device

    assert choose_device(" CPU ") == torch.device("cpu")


def test_damaged_cached_hub_model_is_named_and_auto_falls_back(tmp_path):
    # The pocket files laid out as a cached copy of the real model, with truncated weights.
    repo = tmp_path / "hub" / "models--openai--clip-vit-base-patch32"
    snapshot = repo / "snapshots" / ("0" * 40)
    shutil.copytree(POCKET_DIR, snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    weights = snapshot / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:500])
    code = ("import course\n"
            "try:\n"
            f"    course.load_clip('{HUB_ID}')\n"
            "except course.models.ModelLoadError as err:\n"
            "    print('ERROR', err)\n"
            "print('AUTO', course.load_clip('auto').name)\n")
    out = _run(code, HF_HOME=str(tmp_path), HF_ENDPOINT="http://127.0.0.1:9")
    assert out.returncode == 0, out.stderr
    assert f"ERROR {weights}: damaged or truncated" in out.stdout
    assert "AUTO pocket" in out.stdout and "cannot be loaded" in out.stdout
