"""load_clip: the pocket model, local folders, the offline-first hub path, and feature unwrapping."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import course
from course.models import POCKET_DIR, image_processor_class, unwrap_features

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
