"""The device setting (``PRIVSYNTH_DEVICE``): resolution, start-up errors, training and sampling.

Without a GPU the CUDA paths are checked by what they refuse; the end-to-end test is
parametrised over the CPU and CUDA, and its CUDA case runs only where torch sees a GPU.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from corpus import fortune_examples
from privsynth.models import device as device_mod
from privsynth.models.checkpoints import read_checkpoint, write_atomically
from privsynth.models.device import DeviceUnavailableError, module_device, resolve_device
from privsynth.models.dp_train import (
    Checkpointing,
    Example,
    TrainingInterrupted,
    train_dp,
)
from privsynth.models.family import load_generator
from privsynth.models.sampling import SamplingParams, sample
from privsynth.models.tokenizer import load_tokenizer
from privsynth.server.config import Settings, SettingsError
from pydantic import ValidationError
from test_secret_noise import _cfg  # the tiny preset, 40 records: 5 steps an epoch, fixed σ

CUDA = torch.cuda.is_available()
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process sees no CUDA device (whatever the machine has)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


# -- resolving the setting -------------------------------------------------------------------


def test_cpu_and_auto_without_cuda_resolve_to_the_cpu(no_cuda: None) -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cpu")


def test_auto_picks_cuda_when_torch_sees_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")


@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_without_cuda_is_refused_not_replaced_by_the_cpu(no_cuda: None, name: str) -> None:
    with pytest.raises(DeviceUnavailableError, match="sees no CUDA device"):
        resolve_device(name)


def test_a_cuda_index_past_the_devices_present_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(DeviceUnavailableError, match=r"only 2 CUDA device\(s\)"):
        resolve_device("cuda:2")


@pytest.mark.parametrize("name", ["gpu", "CUDA", "cuda:", "cuda:x", "mps", ""])
def test_malformed_settings_are_refused(name: str) -> None:
    with pytest.raises(DeviceUnavailableError, match="not one of auto, cpu, cuda"):
        resolve_device(name)
    with pytest.raises(ValidationError):
        Settings(device=name)


def test_settings_check_cuda_when_a_process_starts_not_when_they_are_read(
    no_cuda: None, tmp_path: Path
) -> None:
    # A migration Job or a CPU torchrun rank reads the same ConfigMap: reading must not fail.
    settings = Settings(data_dir=tmp_path, device="cuda")
    with pytest.raises(SettingsError, match=r"PRIVSYNTH_DEVICE: .*PRIVSYNTH_DEVICE=cpu"):
        settings.resolved_device()
    assert Settings(data_dir=tmp_path).resolved_device() == "cpu"
    assert Settings(data_dir=tmp_path, device="cpu").resolved_device() == "cpu"


def _serve(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PRIVSYNTH_")}
    environ.update(env)
    environ["CUDA_VISIBLE_DEVICES"] = ""  # no GPU for this process, even on a GPU machine
    return subprocess.run(
        [sys.executable, "-m", "privsynth.client.cli", "serve", "--port", "0"],
        env={**environ, "PRIVSYNTH_DATA_DIR": str(tmp_path), "PRIVSYNTH_METRICS_PORT": "-1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=REPO,
    )


@pytest.mark.parametrize(
    ("device", "says"),
    [
        ("cuda", "PRIVSYNTH_DEVICE: device 'cuda' asked for, but torch"),
        ("gpu", "PRIVSYNTH_DEVICE: String should match pattern"),
    ],
)
def test_serve_stops_with_one_line_naming_the_setting(
    tmp_path: Path, device: str, says: str
) -> None:
    """Exit 78 (EX_CONFIG) and a sentence, no traceback, no other setting's value echoed."""
    secret = "admin-token-never-printed-0123456789"
    done = _serve(tmp_path, PRIVSYNTH_DEVICE=device, PRIVSYNTH_ADMIN_TOKEN=secret)
    assert done.returncode == 78, done.stderr[-2000:]
    assert says in done.stderr
    assert done.stderr.startswith("error: configuration: ") or (
        "\nerror: configuration: " in done.stderr
    )
    assert "Traceback" not in done.stderr
    assert secret not in done.stderr + done.stdout
    assert not (tmp_path / "privsynth.db").exists()  # stopped before opening anything


def test_training_on_cuda_without_cuda_fails_before_any_step(no_cuda: None) -> None:
    with pytest.raises(DeviceUnavailableError):
        train_dp(fortune_examples(40), config=_cfg(), tokenizer=load_tokenizer(), device="cuda")


# -- training and sampling on a device -------------------------------------------------------


@pytest.mark.parametrize(
    "device",
    [
        "cpu",
        pytest.param("cuda", marks=pytest.mark.skipif(not CUDA, reason="needs a CUDA device")),
    ],
)
def test_train_and_sample_on_the_device(device: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A few DP steps on ``device``: noise drawn there, the card says where, the stored
    weights load and sample on the same device and on the CPU."""
    from opacus.optimizers import optimizer as dp_optimizer
    from opacus.optimizers import optimizer_fast_gradient_clipping as ghost_optimizer

    noise_devices: set[str] = set()
    real = dp_optimizer._generate_noise

    def recording(*args: Any, **kwargs: Any) -> torch.Tensor:
        noise: torch.Tensor = real(*args, **kwargs)
        noise_devices.add(noise.device.type)
        return noise

    monkeypatch.setattr(dp_optimizer, "_generate_noise", recording)
    monkeypatch.setattr(ghost_optimizer, "_generate_noise", recording)
    result = train_dp(
        fortune_examples(40), config=_cfg(), tokenizer=load_tokenizer(), device=device
    )
    assert result.card["steps"] == 5
    assert noise_devices == {device}
    assert result.card["device"].split(":")[0] == device
    model, tok = load_generator(result.weights, result.model_config, device=device)
    assert module_device(model).type == device
    params = SamplingParams(count=3, max_tokens=6, seed=7)
    out = list(sample(model, tok, params))
    assert len(out) == 3 and out == list(sample(model, tok, params))  # seeded on the device
    on_cpu, cpu_tok = load_generator(result.weights, result.model_config)  # device-free weights
    assert module_device(on_cpu).type == "cpu"
    assert len(list(sample(on_cpu, cpu_tok, params))) == 3


@pytest.mark.parametrize(
    "device",
    ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not CUDA, reason="needs CUDA"))],
)
def test_dp_lora_on_the_device_with_a_bf16_frozen_base(
    device: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Hugging Face family on ``device``: frozen bottom bf16 (under autocast on CUDA),
    adapters fp32 and trained there, sampling there with a label."""
    from privsynth.models import presets
    from privsynth.models.family import tokenizer_for_preset
    from tiny_llama import WORDS, tiny_llama_dir

    base = tiny_llama_dir(tmp_path / "tiny-llama")
    monkeypatch.setitem(
        presets.PRESETS,
        "test-hf-device",
        presets.TrainingPreset("test-hf-device", "hf-lora", str(base), "tiny local base"),
    )
    examples = [
        Example(text=" ".join(WORDS[i % 7 : i % 7 + 5]), label="pets" if i % 2 else "park")
        for i in range(60)
    ]
    result = train_dp(
        examples,
        config=_cfg(preset="test-hf-device", batch_size=16, target_delta=1e-4),
        tokenizer=tokenizer_for_preset("test-hf-device"),
        device=device,
    )
    assert result.card["device"].split(":")[0] == device
    model, tok = load_generator(result.weights, result.model_config, device=device)
    assert {p.device.type for p in model.parameters()} == {device}
    trained = [p for p in model.parameters() if p.requires_grad]
    assert trained and all(p.dtype == torch.float32 for p in trained)
    params = SamplingParams(count=2, max_tokens=6, seed=1, label="pets")
    out = list(sample(model, tok, params))
    assert len(out) == 2 and out == list(sample(model, tok, params))


def test_a_checkpoint_whose_noise_was_drawn_on_another_device_resumes(tmp_path: Path) -> None:
    """A job checkpointed on a GPU resumes on a CPU replica (and the other way round): the
    saved noise stream does not fit the other device's generator, so the resumed run keeps its
    fresh OS-seeded one; weights, optimizer, accountant and step count carry over."""
    ckpt = Checkpointing(path=tmp_path / "checkpoint.pt", every_s=0)
    calls = {"n": 0}

    def stop_after_two() -> bool:
        calls["n"] += 1
        return calls["n"] > 2

    with pytest.raises(TrainingInterrupted) as stopped:
        train_dp(
            fortune_examples(40),
            config=_cfg(epochs=2),
            tokenizer=load_tokenizer(),
            should_stop=stop_after_two,
            checkpoint=ckpt,
        )
    saved = read_checkpoint(ckpt.path)
    assert saved["noise_rng_device"] == "cpu"
    if not CUDA:
        # As a GPU run saves it: a CUDA generator's state (16 bytes, its Philox seed and
        # offset), which a CPU generator's set_state refuses.
        saved["noise_rng"] = torch.zeros(16, dtype=torch.uint8)
        saved["noise_rng_device"] = "cuda"
        buffer = io.BytesIO()
        torch.save(saved, buffer)
        write_atomically(ckpt.path, buffer.getvalue())
    resumed = train_dp(
        fortune_examples(40),
        config=_cfg(epochs=2),
        tokenizer=load_tokenizer(),
        checkpoint=ckpt,
        device="cuda" if CUDA else "cpu",
    )
    assert resumed.card["resumed_from_step"] == stopped.value.steps == 2
    assert resumed.card["steps"] == 10


def test_bf16_autocast_only_on_cuda() -> None:
    with device_mod.bf16_autocast(torch.device("cpu")):
        assert not torch.is_autocast_enabled("cpu")
    assert device_mod.describe_device(torch.device("cpu")) == "cpu"


@pytest.mark.parametrize("fast", [True, False])
def test_the_frozen_base_runs_in_bf16_only_where_the_cpu_has_bf16_kernels(
    fast: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Emulated bf16 made a training step minutes long on an AVX2-only CPU: there the frozen
    base and head stay fp32; what trains is fp32 either way."""
    from privsynth.models.hf_lm import HFLoRAConfig, build_model
    from tiny_llama import tiny_llama_dir

    monkeypatch.setattr(device_mod, "cpu_has_fast_bf16", lambda: fast)
    expected = torch.bfloat16 if fast else torch.float32
    assert device_mod.frozen_dtype(torch.device("cpu")) == expected
    assert device_mod.frozen_dtype(torch.device("cuda")) == torch.bfloat16
    model, tok, _ = build_model(HFLoRAConfig(base=str(tiny_llama_dir(tmp_path / "b"))))
    assert model.head_frozen.dtype == expected
    assert model.hf.model.layers[0].self_attn.q_proj.weight.dtype == expected
    assert all(p.dtype == torch.float32 for p in model.parameters() if p.requires_grad)
    ids = torch.tensor([[tok.bos_id, *tok.encode("the dog ran"), tok.eos_id]])
    logits = model(ids)
    assert logits.dtype == torch.float32 and torch.isfinite(logits).all()
