"""Damaged files of every kind styleshift reads: each ends in a one-line error naming the
file (exit code 2 from the command), never a traceback, a hang or a blow-up of memory.

Hypothesis cuts and flips bytes of real files; every example has a deadline."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from optional import need
from styleshift import cli
from styleshift.apps.batch import plan
from styleshift.core.errors import StyleshiftError
from styleshift.core.weights import load_state_dict
from styleshift.feedforward.decoder import Decoder, ModelInfo, load_model, save_model
from styleshift.feedforward.engine import shipped_model
from styleshift.io.image import load_image

FUZZ = settings(
    max_examples=25,
    deadline=timedelta(seconds=20),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,  # the same examples on every run: a failure is reproducible
)


def _damage(data: bytes, cut: float, flips: list[tuple[float, int]]) -> bytes:
    damaged = bytearray(data[: max(1, int(len(data) * cut))])
    for where, bit in flips:
        damaged[int(where * (len(damaged) - 1))] ^= 1 << bit
    return bytes(damaged)


DAMAGE = {
    "cut": st.floats(0.0, 1.0),
    "flips": st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 7)), max_size=8),
}


def _one_line(error: BaseException, name: str) -> None:
    text = str(error)
    assert "\n" not in text and name in text, text


@pytest.fixture(scope="module")
def picture_bytes(images: Path) -> dict[str, bytes]:
    photo = Image.open(images / "content" / "kodim23_parrots.png").convert("RGB")
    photo.thumbnail((96, 96))
    out = {}
    for fmt in ("PNG", "JPEG", "WEBP"):
        buffer = io.BytesIO()
        photo.save(buffer, format=fmt)
        out[fmt] = buffer.getvalue()
    return out


@FUZZ
@given(fmt=st.sampled_from(["PNG", "JPEG", "WEBP"]), **DAMAGE)
def test_damaged_pictures(
    picture_bytes: dict[str, bytes], tmp_path: Path, fmt: str, cut: float, flips: list
) -> None:
    path = tmp_path / f"damaged.{fmt.lower()}"
    path.write_bytes(_damage(picture_bytes[fmt], cut, flips))
    try:
        image = load_image(path)
    except StyleshiftError as e:
        _one_line(e, "damaged")
    else:
        assert image.size[0] <= 96 and image.size[1] <= 96  # a flip in the pixels: it loads


def test_a_header_claiming_a_huge_picture_is_refused_before_decoding(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = (200_000).to_bytes(4, "big") + (200_000).to_bytes(4, "big")  # IHDR size
    path = tmp_path / "huge.png"
    path.write_bytes(bytes(data))
    with pytest.raises(StyleshiftError, match=r"huge\.png") as e:
        load_image(path)
    _one_line(e.value, "huge.png")


@FUZZ
@given(**DAMAGE)
def test_damaged_decoder_files(tmp_path: Path, cut: float, flips: list) -> None:
    path = tmp_path / "damaged.safetensors"
    path.write_bytes(_damage(shipped_model("relu3_1").read_bytes(), cut, flips))
    try:
        load_model(path)
    except StyleshiftError as e:
        _one_line(e, "damaged.safetensors")


def test_a_decoder_with_nan_or_the_wrong_shapes_is_refused_by_name(tmp_path: Path) -> None:
    decoder = Decoder("relu2_1")
    with torch.no_grad():
        next(iter(decoder.parameters()))[0] = float("nan")
    path = tmp_path / "nan.safetensors"
    save_model(decoder, ModelInfo("relu2_1", "max", 1, {}), path)
    with pytest.raises(StyleshiftError, match=r"'.*nan.safetensors' holds weights that are not"):
        load_model(path)
    wrong = tmp_path / "wrong.safetensors"
    save_model(Decoder("relu1_1"), ModelInfo("relu2_1", "max", 1, {}), wrong)
    with pytest.raises(StyleshiftError, match=r"'.*wrong.safetensors' does not hold a relu2_1"):
        load_model(wrong)


@FUZZ
@given(**DAMAGE)
def test_damaged_vgg_weights(weights_file: Path, tmp_path: Path, cut: float, flips: list) -> None:
    # The first megabytes hold the header and the first layers: enough to damage.
    with weights_file.open("rb") as f:
        head = f.read(1 << 20)
    path = tmp_path / "vgg19.safetensors"
    path.write_bytes(_damage(head, cut, flips))
    for verify in (True, False):  # the hash check first; without it, the reader itself
        with pytest.raises(StyleshiftError) as e:
            load_state_dict(path, verify=verify)
        _one_line(e.value, "vgg19.safetensors")


@FUZZ
@given(text=st.text(max_size=300), suffix=st.sampled_from([".csv", ".jsonl"]))
def test_garbled_manifests(tmp_path: Path, images: Path, text: str, suffix: str) -> None:
    path = tmp_path / f"jobs{suffix}"
    path.write_text(text, encoding="utf-8")
    try:
        jobs = plan([path], [images / "style" / "picabia_udnie.jpg"])
    except StyleshiftError as e:
        _one_line(e, "")
    else:
        assert all(j.error is None or "\n" not in j.error for j in jobs)


@FUZZ
@given(cut=st.floats(0.05, 0.95), flips=DAMAGE["flips"])
def test_videos_cut_mid_stream(images: Path, tmp_path: Path, cut: float, flips: list) -> None:
    need("av")
    from styleshift.io.videoio import probe, read_frames

    source = images / "video" / "big_buck_bunny_cut_10s_640x360.mp4"
    path = tmp_path / "cut.mp4"
    path.write_bytes(_damage(source.read_bytes()[:400_000], cut, flips))
    try:
        info = probe(path, duration=0.5)
        for _ in read_frames(info):
            pass
    except StyleshiftError as e:
        _one_line(e, "cut.mp4")


def test_the_command_answers_a_damaged_file_in_one_line_with_exit_2(
    tmp_path: Path, images: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photo = tmp_path / "photo.png"
    photo.write_bytes((images / "content" / "kodim23_parrots.png").read_bytes()[:5000])
    model = tmp_path / "model.safetensors"
    model.write_bytes(shipped_model("relu3_1").read_bytes()[:3000])
    style = str(images / "style" / "picabia_udnie.jpg")
    for argv in (
        ["stylize", str(photo), style, "-o", str(tmp_path / "a.png"), "--preset", "instant", "-q"],
        ["stylize", style, style, "-o", str(tmp_path / "b.png"), "--preset", "instant",
         "--model", str(model), "-q"],
    ):  # fmt: skip
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert not list(tmp_path.glob("*.png"))[1:]  # only the damaged photo is there
