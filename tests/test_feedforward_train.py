"""Training a decoder: the loss falls, runs resume, two processes agree, bad input is named."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from styleshift.core.errors import InputError, OptionError
from styleshift.core.vgg import VGGFeatures
from styleshift.core.weights import load_state_dict
from styleshift.feedforward.decoder import load_model
from styleshift.feedforward.engine import shipped_model
from styleshift.feedforward.train import (
    Reconstruction,
    TrainProgress,
    TrainSettings,
    checkpoint_path,
    feature_layers,
    train,
)
from styleshift.io.image import load_image, resize_long_side, to_tensor

# relu2_1 decoders are small: a step on two 64 px crops takes a few hundredths of a second.
TINY = TrainSettings(
    level="relu2_1",
    batch_size=2,
    crop=64,
    learning_rate=1e-3,
    validate_every=5,
    seed=3,
    precision="float32",  # the digests below are compared bit for bit
)


@pytest.fixture(scope="module")
def photos(images: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    for name in ("kodim23_parrots.png", "kodim21_lighthouse.png", "tubingen.jpg"):
        shutil.copy(images / "content" / name, folder / name)
    return folder


def test_a_short_run_lowers_the_loss_and_writes_a_loadable_model(
    photos: Path, images: Path, tmp_path: Path, weights_file: Path
) -> None:
    seen: list[TrainProgress] = []
    out = tmp_path / "decoder.safetensors"
    result = train(
        [photos],
        out,
        TrainSettings(**{**TINY.__dict__, "steps": 40}),
        validation=[images / "content" / "rocket.jpg"],
        callback=seen.append,
    )
    losses = [p.loss for p in seen]
    assert len(losses) == 40 and result.steps == 40
    assert sum(losses[-8:]) / 8 < 0.7 * sum(losses[:8]) / 8
    psnrs = [p.psnr for p in seen if p.psnr is not None]
    assert psnrs and psnrs[-1] > psnrs[0]
    _, info = load_model(out)
    assert info.level == "relu2_1" and info.steps == 40
    assert checkpoint_path(out).is_file()


def test_a_resumed_run_continues_from_its_checkpoint(
    photos: Path, tmp_path: Path, weights_file: Path
) -> None:
    out = tmp_path / "decoder.safetensors"
    first = train([photos], out, TrainSettings(**{**TINY.__dict__, "steps": 6}))
    steps: list[int] = []
    second = train(
        [photos],
        out,
        TrainSettings(**{**TINY.__dict__, "steps": 10}),
        callback=lambda p: steps.append(p.step),
    )
    assert steps == [7, 8, 9, 10]
    assert [h["step"] for h in second.history] == list(range(1, 11))
    # the same ten steps in one go give the same weights: nothing was lost or repeated
    straight = train(
        [photos], tmp_path / "straight.safetensors", TrainSettings(**{**TINY.__dict__, "steps": 10})
    )
    assert first.digest != second.digest
    assert second.digest == straight.digest


def test_a_checkpoint_from_before_style_training_resumes(
    photos: Path, tmp_path: Path, weights_file: Path
) -> None:
    out = tmp_path / "decoder.safetensors"
    train([photos], out, TrainSettings(**{**TINY.__dict__, "steps": 2}))
    state = torch.load(checkpoint_path(out), weights_only=True)
    for name in ("style_weight", "stylised_share", "start_from"):
        del state["settings"][name]
    torch.save(state, checkpoint_path(out))
    assert train([photos], out, TrainSettings(**{**TINY.__dict__, "steps": 3})).steps == 3


def test_refusals_name_the_problem(photos: Path, tmp_path: Path, weights_file: Path) -> None:
    out = tmp_path / "decoder.safetensors"
    train([photos], out, TrainSettings(**{**TINY.__dict__, "steps": 2}))
    with pytest.raises(InputError, match="trained with level='relu2_1'"):
        train([photos], out, TrainSettings(level="relu3_1", steps=3))
    with pytest.raises(InputError, match="no checkpoint"):
        train([photos], tmp_path / "new.safetensors", TINY, resume=True)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no images found"):
        train([empty], tmp_path / "x.safetensors", TINY)
    (empty / "broken.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match="none of the 1 files could be used"):
        train([empty], tmp_path / "x.safetensors", TINY)
    with pytest.raises(OptionError, match=r"\.safetensors"):
        train([photos], tmp_path / "x.pt", TINY)
    # Refused before the first step, not when the finished run saves.
    steps: list[int] = []
    with pytest.raises(InputError, match=r"folder .* does not exist; create it first"):
        train(
            [photos],
            tmp_path / "no" / "x.safetensors",
            TINY,
            callback=lambda p: steps.append(p.step),
        )
    assert steps == [] and not (tmp_path / "no").exists()
    with pytest.raises(OptionError, match="unknown decoder level"):
        train([photos], tmp_path / "x.safetensors", TrainSettings(level="relu9_1"))  # type: ignore[arg-type]
    with pytest.raises(OptionError, match=r"photo size \(100 px\) must be at least the crop"):
        train([photos], tmp_path / "x.safetensors", TrainSettings(photo_size=100))
    # A model without its checkpoint is not this run's to replace: refused, kept as it was.
    checkpoint_path(out).unlink()
    before = out.read_bytes()
    for resume in (None, False):
        with pytest.raises(InputError, match="exists and has no checkpoint to resume"):
            train([photos], out, TrainSettings(**{**TINY.__dict__, "steps": 2}), resume=resume)
    assert out.read_bytes() == before


def test_style_training_refusals_name_the_problem(
    photos: Path, images: Path, tmp_path: Path, weights_file: Path
) -> None:
    out = tmp_path / "x.safetensors"
    styled = TrainSettings(**{**TINY.__dict__, "style_weight": 1.0})
    with pytest.raises(OptionError, match="give --styles DIR"):
        train([photos], out, styled)
    with pytest.raises(OptionError, match="give --style-weight"):
        train([photos], out, TINY, styles=[photos])
    with pytest.raises(OptionError, match="stylised share must be between 0 and 1"):
        train([photos], out, TrainSettings(stylised_share=1.0))
    with pytest.raises(OptionError, match="batch size of at least 2"):
        train([photos], out, TrainSettings(style_weight=1.0, batch_size=1), styles=[photos])
    with pytest.raises(InputError, match="to start from not found; check --start-from"):
        train([photos], out, TrainSettings(**{**TINY.__dict__, "start_from": "missing.st"}))
    with pytest.raises(InputError, match=r"is a relu4_1 decoder .* this run trains relu2_1"):
        train([photos], out, TrainSettings(**{**TINY.__dict__, "start_from": str(shipped_model())}))


def test_a_deeper_decoder_starts_from_a_shallower_one(
    photos: Path, tmp_path: Path, weights_file: Path
) -> None:
    """A relu3_1 run started from a relu2_1 decoder keeps that decoder as its last layers
    (a barely moving step leaves them as they were); its new first layers train."""
    shallow = tmp_path / "relu2_1.safetensors"
    train([photos], shallow, TrainSettings(**{**TINY.__dict__, "steps": 2}))
    deep = tmp_path / "relu3_1.safetensors"
    settings = {**TINY.__dict__, "level": "relu3_1", "steps": 1, "learning_rate": 1e-9}
    train([photos], deep, TrainSettings(**{**settings, "start_from": str(shallow)}))
    small = list(load_model(shallow)[0].state_dict().values())
    big = list(load_model(deep)[0].state_dict().values())
    assert len(big) > len(small)
    for a, b in zip(small, big[-len(small) :], strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-3)
    fresh = tmp_path / "fresh.safetensors"  # without the start, the same run's differ
    train([photos], fresh, TrainSettings(**settings))
    unstarted = list(load_model(fresh)[0].state_dict().values())
    assert not torch.allclose(small[-2].float(), unstarted[-2].float(), atol=1e-3)


@pytest.mark.parametrize("style_loss", ["statistics", "gram"])
def test_a_style_weight_teaches_the_decoder_to_paint(
    photos: Path, images: Path, tmp_path: Path, weights_file: Path, style_loss: str
) -> None:
    """On a fixed batch, steps of the style objective bring the shipped relu3_1 decoder's
    stylised crops nearer the paintings' statistics (or Gram matrices) while it still
    rebuilds the photos; `train` reports the terms and writes a model that loads."""
    settings = TrainSettings(
        level="relu3_1", style_weight=5.0, precision="float32", style_loss=style_loss
    )
    layers = feature_layers("relu3_1")
    encoder = VGGFeatures(load_state_dict(weights_file), layers, "max", torch.float32)
    decoder = load_model(shipped_model("relu3_1"))[0].float().requires_grad_(True)
    model = Reconstruction(encoder, decoder, settings, torch.float32)
    photo = to_tensor(resize_long_side(load_image(images / "content" / "rocket.jpg"), 96))
    paintings = torch.cat(
        [
            to_tensor(load_image(images / "style" / name).resize((96, 96)))
            for name in ("klimt_the_kiss.jpg", "cezanne_forest.jpg")
        ]
    )
    crops = torch.cat([photo[..., :64, :64], photo[..., -64:, -64:], photo[..., :64, -64:]])
    optimiser = torch.optim.Adam(decoder.parameters(), lr=1e-4)
    terms = []
    for _ in range(20):
        loss, record = model(crops, paintings[..., :64, :64])
        terms.append(record)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert set(terms[0]) == {"pixel", "feature", "content", "style"}
    # Measured: 0.46 (statistics), 0.40 (Gram).
    assert float(terms[-1]["style"]) < 0.6 * float(terms[0]["style"])
    assert float(terms[-1]["pixel"]) < 2 * float(terms[0]["pixel"])  # still rebuilds photos

    folder = tmp_path / "paintings"
    folder.mkdir()
    shutil.copy(images / "style" / "klimt_the_kiss.jpg", folder)
    seen: list[TrainProgress] = []
    out = tmp_path / "painted.safetensors"
    tiny = TrainSettings(**{**TINY.__dict__, "steps": 3, "style_weight": 5.0,
                            "style_loss": style_loss})  # fmt: skip
    result = train([photos], out, tiny, styles=[folder], callback=seen.append)
    assert all(p.style is not None and p.style > 0 for p in seen)
    assert {"content", "style"} <= set(result.history[-1])
    assert load_model(out)[1].steps == 3


def test_the_photo_size_sets_the_scale_the_crops_are_cut_at(
    photos: Path, tmp_path: Path, weights_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import styleshift.feedforward.train as training

    seen: list[int] = []
    real = training.load_photos

    def spy(files: list[Path], short_side: int, min_side: int) -> object:
        loaded = real(files, short_side, min_side)
        seen.extend(min(image.shape[-2:]) for image in loaded.images)
        return loaded

    monkeypatch.setattr(training, "load_photos", spy)
    settings = TrainSettings(**{**TINY.__dict__, "steps": 1, "photo_size": 100})
    train([photos], tmp_path / "x.safetensors", settings)
    assert seen and max(seen) == 100  # the default, 4 x 64 px, would leave 256


def test_unreadable_files_are_skipped_and_counted(
    photos: Path, tmp_path: Path, weights_file: Path
) -> None:
    data = tmp_path / "data"
    shutil.copytree(photos, data)
    (data / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    result = train(
        [data], tmp_path / "d.safetensors", TrainSettings(**{**TINY.__dict__, "steps": 1})
    )
    assert len(result.skipped) == 1 and "broken.jpg" in result.skipped[0]
    assert result.images == 3


def test_two_processes_under_torchrun_end_with_identical_weights(
    photos: Path, tmp_path: Path, weights_file: Path
) -> None:
    script = tmp_path / "ddp.py"
    script.write_text(
        "import json, os, sys\n"
        "from styleshift.feedforward.train import TrainSettings, train\n"
        "r = train([sys.argv[1]], sys.argv[2], TrainSettings(level='relu2_1', batch_size=2,"
        " crop=64, steps=int(sys.argv[3]), seed=1, precision='float32'))\n"
        "print(json.dumps({'rank': int(os.environ['RANK']), 'digest': r.digest,"
        " 'world': r.world_size, 'first': r.history[0]['step']}), flush=True)\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for steps in (4, 6):  # the second run resumes the first's checkpoint on both ranks
        proc = subprocess.run(
            [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
             str(script), str(photos), str(tmp_path / "ddp.safetensors"), str(steps)],
            capture_output=True, text=True, env=env, timeout=300,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
        reports = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        assert sorted(r["rank"] for r in reports) == [0, 1]
        assert {r["world"] for r in reports} == {2}
        assert reports[0]["digest"] == reports[1]["digest"]
        _, info = load_model(tmp_path / "ddp.safetensors")
        assert info.steps == steps


def test_the_cli_trains_and_resumes(photos: Path, tmp_path: Path, weights_file: Path) -> None:
    out = tmp_path / "cli.safetensors"
    base = [sys.executable, "-m", "styleshift", "train", str(photos), "-o", str(out),
            "--level", "relu2_1", "--batch-size", "2", "--crop", "64", "--json"]  # fmt: skip
    proc = subprocess.run([*base, "--steps", "3"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["steps"] == 3
    proc = subprocess.run([*base, "--steps", "5"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["steps"] == 5 and report["history"][0]["step"] == 1
    other = [a if a != "relu2_1" else "relu3_1" for a in base]
    proc = subprocess.run([*other, "--steps", "6"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("styleshift: error: checkpoint")
    assert "Traceback" not in proc.stderr
    assert torch.load(checkpoint_path(out), weights_only=True)["step"] == 5


def test_a_kill_saves_a_checkpoint_to_resume_from(
    photos: Path, tmp_path: Path, weights_file: Path
) -> None:
    out = tmp_path / "killed.safetensors"
    script = tmp_path / "run.py"
    script.write_text(
        "import sys\n"
        "from styleshift.feedforward.train import TrainSettings, train\n"
        "train([sys.argv[1]], sys.argv[2], TrainSettings(level='relu2_1', batch_size=2,"
        " crop=64, steps=100000), callback=lambda p: print(p.step, flush=True))\n"
    )
    proc = subprocess.Popen(
        [sys.executable, str(script), str(photos), str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:
        if int(line) >= 3:
            break
    proc.terminate()
    proc.communicate(timeout=60)
    assert proc.returncode != 0  # stopped, not finished
    saved = torch.load(checkpoint_path(out), weights_only=True)["step"]
    assert saved >= 3
    _, info = load_model(out)
    assert info.steps == saved
