#!/usr/bin/env python3
"""Gather the training photos for styleshift's shipped decoders, reproducibly.

Everything comes from the package registries (Debian's wallpaper packages and the
scikit-image wheel, pinned by version) and from ../shared/images (video frames and
paintings). Nothing is committed: run this on any Debian-like machine with apt and pip.

    python scripts/training_data.py DIR [--shared ../shared/images]

writes DIR/train/..., DIR/val/... (every 8th Debian photo and three scikit-image
photos, held out) and
DIR/manifest.json: every file with its source, version, original path, sha256 and
licence. The shared content photos are held out entirely (they are the test images).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

DEBIAN_PACKAGES = {
    # package: version; each package's own copyright file gives the licence per image.
    "gnome-backgrounds": "43.1-1",
    "mate-backgrounds": "1.26.0-1",
    "plasma-workspace-wallpapers": "4:5.27.5-2",
    "ukui-wallpapers": "20.04.3-1.1",
    "lomiri-wallpapers-16.04": "20.04.0-2",
    "lomiri-wallpapers-20.04": "20.04.0-2",
}
SKIMAGE = "scikit-image==0.26.0"
# The shared test photos are left out (the skimage copies of them too); a portrait, an
# animal and an object are held out for validation, where the wallpapers have none.
SKIMAGE_LEFT_OUT = {"rocket.jpg", "camera.png"}
SKIMAGE_VALIDATION = {"astronaut.png", "chelsea.png", "coffee.png"}
SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
VAL_EVERY = 8
VIDEO_EVERY_S = 1.0


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def licence_of(copyright_text: str, filename: str) -> str:
    """The License field of the copyright stanza naming `filename`, else the file's first."""
    stanzas = copyright_text.split("\n\n")
    for stanza in stanzas:
        if filename in stanza:
            match = re.search(r"^License:\s*(.+)$", stanza, re.M)
            if match:
                return match.group(1).strip()
    match = re.search(r"Licen[sc]ed under (.+?)[.\n]", copyright_text)
    if match:
        return match.group(1).strip()
    match = re.search(r"^License:\s*(.+)$", copyright_text, re.M)
    return match.group(1).strip() if match else "see the package's copyright file"


def debian_photos(work: Path) -> list[dict[str, str]]:
    """The largest file of each wallpaper (packages ship several resolutions of one)."""
    items: list[dict[str, str]] = []
    for package, version in DEBIAN_PACKAGES.items():
        subprocess.run(
            ["apt-get", "download", f"{package}={version}"],
            cwd=work,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        deb = next(work.glob(f"{package}_*.deb"))
        root = work / package
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
        copyright_text = (root / f"usr/share/doc/{package}/copyright").read_text(errors="replace")
        best: dict[str, Path] = {}
        for path in sorted(root.rglob("*")):
            if path.suffix.lower() not in SUFFIXES or path.is_symlink() or not path.is_file():
                continue
            # plasma: Name/contents/images/1920x1080.png; others: name_3840x2160.jpg
            key = (
                path.parents[2].name
                if path.parent.name.startswith("images")
                else re.sub(r"[-_]?\d{3,5}x\d{3,5}", "", path.stem)
            )
            key = f"{path.parent.name}-{key}" if path.parent.name == "images_dark" else key
            if key not in best or path.stat().st_size > best[key].stat().st_size:
                best[key] = path
        for key, path in sorted(best.items()):
            items.append(
                {
                    "path": str(path),
                    "name": f"{package}/{key}{path.suffix.lower()}",
                    "source": f"Debian package {package} {version}",
                    "original": "/" + str(path.relative_to(root)),
                    "licence": licence_of(copyright_text, path.name),
                }
            )
    return items


def skimage_photos(work: Path) -> list[dict[str, str]]:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "-q",
            "-d",
            str(work),
            SKIMAGE,
        ],
        check=True,
    )
    wheel = next(work.glob("scikit_image-*.whl"))
    out = work / "skimage"
    items = []
    with zipfile.ZipFile(wheel) as z:
        for member in sorted(z.namelist()):
            name = Path(member).name
            if not member.startswith("skimage/data/") or Path(name).suffix not in SUFFIXES:
                continue
            if name in SKIMAGE_LEFT_OUT:
                continue
            target = out / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(z.read(member))
            items.append(
                {
                    "path": str(target),
                    "name": f"scikit-image/{name}",
                    "source": f"PyPI wheel {SKIMAGE}",
                    "original": member,
                    "licence": "scikit-image sample data: public domain or CC0 per "
                    "skimage/data/README.txt and the skimage.data docstrings",
                }
            )
    return items


def shared_items(shared: Path, work: Path) -> list[dict[str, str]]:
    items = []
    for path in sorted((shared / "style").glob("*")):
        if path.suffix.lower() in SUFFIXES:
            items.append(
                {
                    "path": str(path),
                    "name": f"shared-style/{path.name}",
                    "source": "../shared/images/style",
                    "original": path.name,
                    "licence": "public domain (see ../shared/images/SOURCES.md)",
                }
            )
    for path in sorted((shared / "video").rglob("*.png")):
        items.append(
            {
                "path": str(path),
                "name": f"sintel/{path.name}",
                "source": "../shared/images/video/sintel_market_frames",
                "original": path.name,
                "licence": "CC BY 3.0, (c) copyright Blender Foundation | durian.blender.org",
            }
        )
    for clip in sorted((shared / "video").glob("*.mp4")):
        import av

        with av.open(str(clip)) as container:
            stream = container.streams.video[0]
            next_time = 0.0
            for frame in container.decode(stream):
                if frame.time is None or frame.time + 1e-6 < next_time:
                    continue
                next_time += VIDEO_EVERY_S
                target = work / "frames" / f"{clip.stem}_{frame.time:06.2f}.png"
                target.parent.mkdir(parents=True, exist_ok=True)
                frame.to_image().save(target)
                items.append(
                    {
                        "path": str(target),
                        "name": f"frames/{target.name}",
                        "source": f"../shared/images/video/{clip.name}",
                        "original": f"frame at {frame.time:.2f} s",
                        "licence": "CC BY 3.0, (c) copyright 2008, Blender Foundation / "
                        "www.bigbuckbunny.org",
                    }
                )
    return items


def write_corpus(out: Path, items: list[dict[str, str]]) -> dict[str, int]:
    """Copy each item's file ("path") to out/SPLIT/NAME and write out/manifest.json with
    everything else about it and its SHA-256; returns the count of each split."""
    manifest = []
    for item in items:
        target = out / item["split"] / item["name"]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(item["path"], target)
        record = {k: v for k, v in item.items() if k != "path"}
        record.update(file=str(target.relative_to(out)), sha256=sha256(target))
        manifest.append(record)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return {s: sum(r["split"] == s for r in manifest) for s in ("train", "val")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder to write (train/, val/, manifest.json)")
    parser.add_argument("--shared", type=Path, default=Path(__file__).parents[2] / "shared/images")
    args = parser.parse_args()
    if args.out.exists() and any(args.out.iterdir()):
        print(f"{args.out} is not empty; give a new folder", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        debian = debian_photos(work)
        others = skimage_photos(work) + shared_items(args.shared, work)
        for index, item in enumerate(debian + others):
            held_out = Path(item["name"]).name in SKIMAGE_VALIDATION
            if item in debian:
                held_out = index % VAL_EVERY == VAL_EVERY - 1
            item["split"] = "val" if held_out else "train"
        counts = write_corpus(args.out, debian + others)
    print(f"{args.out}: {counts['train']} training and {counts['val']} validation images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
