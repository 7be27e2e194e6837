"""Data: named datasets, a folder of HR images, and the training-pair samplers.

* :data:`DATASETS` names every set the course uses (DIV2K, Set5, Set14, B100, Urban100, T91, BSD200) with
  where it comes from. :func:`get_dataset` finds a local folder ``<data>/<Set>/HR`` (``<data>`` is
  ``$COURSE_DATA_DIR``, else ``data/`` in the repository) and only downloads when there is none,
  with torchvision's download helpers, checking each file's sha256 where it is known.
* :class:`HRFolder` reads a folder of images as uint8 (3, H, W) tensors; :func:`training_images` joins
  several folders or dataset names (the default, T91 + BSD200, is the classic "291" set).
* :class:`MultiScalePatches` (the DIINN authors' recipe: one pair per scale 2, 3, 4) and
  :class:`LIIFPatches` (LIIF's recipe: one random real scale in [1, 4] and sampled query pixels)
  make training pairs on the fly. Each item draws from its own ``torch.Generator`` seeded by
  (seed, epoch, index), so an item is the same whichever DataLoader worker makes it and whatever
  ran before it; call ``set_epoch(epoch)`` to get new crops each epoch.

Derived in notebooks/06_training.ipynb.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset

from .data_manifest import FILES, SOURCES
from .degrade import check_kernels, random_resample
from .errors import CourseError, check_scale
from .images import centre_crop, load_image_uint8, save_image, to_uint8

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
REPO_ROOT = Path(__file__).resolve().parents[1]
DIV2K_URL = "http://data.vision.ee.ethz.ch/cvl/DIV2K/"

# ---------------------------------------------------------------------------------------------------
# The registry of named datasets
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetInfo:
    """A named dataset: where its files live locally and where they come from."""

    name: str
    role: str  # "train" or "test"
    folder: str  # the images live in <data>/<folder>/HR
    source: str  # where the files come from, in words
    cite: str
    stems: tuple = ()  # for a subset of a folder (DIV2K): the file stems that belong to it
    archive: str | None = None  # a zip to download (DIV2K), else one download per file (FILES)
    archive_sha256: str | None = None  # None: unknown (never invented)

    def files(self) -> list[tuple[str, str, str | None]]:
        """(file name, download URL, sha256 or None) of every file downloaded one by one."""
        if self.name not in SOURCES:
            return []
        repo, commit = SOURCES[self.name]
        out = []
        for line in FILES.splitlines():
            s, name, sha, path = line.split("\t")
            if s == self.name:
                url = f"https://raw.githubusercontent.com/{repo}/{commit}/{path}"
                out.append((name, url, None if sha == "-" else sha))
        return out


def _github(name: str) -> str:
    repo, commit = SOURCES[name]
    return f"github.com/{repo} at commit {commit[:7]} (one file per image)"


DATASETS: dict[str, DatasetInfo] = {
    "DIV2K": DatasetInfo(
        "DIV2K", "test", "DIV2K", "DIV2K validation HR 0801-0900 (" + DIV2K_URL + "DIV2K_valid_HR.zip)",
        "E. Agustsson, R. Timofte, NTIRE 2017 Challenge on Single Image Super-Resolution, CVPRW 2017",
        stems=tuple(f"{i:04d}" for i in range(801, 901)), archive=DIV2K_URL + "DIV2K_valid_HR.zip"),
    "DIV2K-train": DatasetInfo(
        "DIV2K-train", "train", "DIV2K", "DIV2K training HR 0001-0800 (" + DIV2K_URL + "DIV2K_train_HR.zip)",
        "E. Agustsson, R. Timofte, NTIRE 2017 Challenge on Single Image Super-Resolution, CVPRW 2017",
        stems=tuple(f"{i:04d}" for i in range(1, 801)), archive=DIV2K_URL + "DIV2K_train_HR.zip"),
    "Set5": DatasetInfo(
        "Set5", "test", "Set5", _github("Set5"),
        "M. Bevilacqua et al., Low-Complexity Single-Image Super-Resolution based on Nonnegative "
        "Neighbor Embedding, BMVC 2012"),
    "Set14": DatasetInfo(
        "Set14", "test", "Set14", _github("Set14"),
        "R. Zeyde, M. Elad, M. Protter, On Single Image Scale-Up Using Sparse-Representations, 2010"),
    "B100": DatasetInfo(
        "B100", "test", "B100", _github("B100") + "; 480x320 crops of BSDS300 test images",
        "D. Martin et al., A Database of Human Segmented Natural Images, ICCV 2001"),
    "Urban100": DatasetInfo(
        "Urban100", "test", "Urban100", _github("Urban100"),
        "J.-B. Huang, A. Singh, N. Ahuja, Single Image Super-Resolution from Transformed Self-Exemplars, "
        "CVPR 2015"),
    "T91": DatasetInfo(
        "T91", "train", "T91", _github("T91") + "; BMP files",
        "J. Yang, J. Wright, T. S. Huang, Y. Ma, Image Super-Resolution via Sparse Representation, "
        "IEEE TIP 2010"),
    "BSD200": DatasetInfo(
        "BSD200", "train", "BSD200", _github("BSD200") + "; the 200 BSDS300 training images (disjoint from B100)",
        "D. Martin et al., A Database of Human Segmented Natural Images, ICCV 2001"),
}

TRAIN_DEFAULT = ("T91", "BSD200")  # the classic "291" training set (VDSR, MemNet): every course config's default


def data_dir() -> Path:
    """The data root: ``$COURSE_DATA_DIR`` when set, else ``data/`` in the repository.

    Notebook: 06_training.
    """
    env = os.environ.get("COURSE_DATA_DIR")
    return Path(env).expanduser() if env else REPO_ROOT / "data"


def dataset_info(name: str) -> DatasetInfo:
    """The registry entry of a dataset name; an unknown name lists the known ones. Notebook: 06_training."""
    if name not in DATASETS:
        raise CourseError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
    return DATASETS[name]


def _local_folders(info: DatasetInfo) -> list[Path]:
    """Where a local copy may be, in order: $COURSE_DATA_DIR/<folder>/HR, then <repo>/data/<folder>/HR."""
    roots = [Path(os.environ["COURSE_DATA_DIR"]).expanduser()] if os.environ.get("COURSE_DATA_DIR") else []
    roots.append(REPO_ROOT / "data")
    return [root / info.folder / "HR" for root in roots]


def _has_images(folder: Path, stems=()) -> bool:
    if not folder.is_dir():
        return False
    found = {p.stem for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    return bool(found & set(stems)) if stems else bool(found)


def sha256_file(path) -> str:
    """Hex sha256 of a file. Notebook: 06_training."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fetch(url: str, folder: Path, filename: str) -> Path:
    """Download one file with torchvision's helper."""
    from torchvision.datasets.utils import download_url

    download_url(url, str(folder), filename)
    return folder / filename


def _fetch_archive(url: str, download_root: Path, extract_root: Path) -> None:
    """Download and unpack a zip with torchvision's helper."""
    from torchvision.datasets.utils import download_and_extract_archive

    download_and_extract_archive(url, str(download_root), str(extract_root))


def download(name: str, root=None) -> Path:
    """Download dataset ``name`` into ``<root or data_dir()>/<folder>/HR`` and return that folder.

    Files go to a staging folder first and move into ``HR`` only when all of them arrived, so an
    interrupted download never looks like a local copy. Each file's sha256 is checked where the
    registry knows it; a mismatch deletes the file and raises. Without a network this raises one
    CourseError that says which folder to create and where the files come from.
    Notebook: 06_training.
    """
    info = dataset_info(name)
    hr = Path(root or data_dir()) / info.folder / "HR"
    staging = hr.parent / f"download-{info.name}"
    try:
        staging.mkdir(parents=True, exist_ok=True)
        if info.archive:
            _fetch_archive(info.archive, staging, staging)
            found = [p for p in staging.rglob("*")
                     if p.suffix.lower() in IMAGE_SUFFIXES and p.stem in info.stems]
        else:
            found = []
            for filename, url, sha in info.files():
                path = staging / filename
                if not path.is_file():  # a file from an interrupted earlier try is kept
                    _fetch(url, staging, filename)
                if sha is not None and sha256_file(path) != sha:
                    path.unlink()
                    raise CourseError(f"{filename} from {url} does not match its sha256 (a corrupted "
                                      "download); try again")
                found.append(path)
    except CourseError:
        raise
    except Exception as err:  # noqa: BLE001 - no network, HTTP error, full disk...: one line with the fix
        raise CourseError(f"{name}: no local copy and the download failed ({type(err).__name__}); create "
                          f"{hr} with its HR images (from {info.source}) or set COURSE_DATA_DIR") from None
    hr.mkdir(parents=True, exist_ok=True)
    for p in found:
        shutil.move(str(p), hr / p.name)
    shutil.rmtree(staging, ignore_errors=True)
    return hr


def dataset_folder(name: str, download_missing: bool = True) -> Path:
    """The folder of HR images of dataset ``name``: a local folder always wins, else it is downloaded.

    Looks in ``$COURSE_DATA_DIR/<Set>/HR``, then ``<repo>/data/<Set>/HR``. With neither (and
    ``download_missing=False`` or no network) raises one CourseError naming the folder to create and
    where the files come from. Notebook: 06_training.
    """
    info = dataset_info(name)
    for folder in _local_folders(info):
        if _has_images(folder, info.stems):
            return folder
    if not download_missing:
        raise CourseError(f"{name} not found: create {_local_folders(info)[0]} with its HR images "
                          f"(from {info.source}) or set COURSE_DATA_DIR")
    return download(name)


def get_dataset(name: str, download_missing: bool = True, limit: int | None = None) -> HRFolder:
    """:class:`HRFolder` of a named dataset (see :func:`dataset_folder`); ``limit`` keeps the first images.

    Notebook: 06_training.
    """
    info = dataset_info(name)
    return HRFolder(dataset_folder(name, download_missing), stems=info.stems or None, limit=limit)


def crop_set(name: str, side: int, root, limit: int | None = None) -> Path:
    """Centred ``side`` x ``side`` crops (:func:`images.centre_crop`) of the first ``limit`` images of dataset
    ``name``, written as PNGs to ``root/<name>-crop<side>/``; returns that folder.

    Scoring crops instead of whole images makes a lesson's evaluation quick; the folder's name (``Set5-crop96``) is
    the dataset label that ``evaluate.evaluate`` and ``compare.score_rows`` give its scores, so crops are never
    mistaken for the whole set. The pixels are the set's own (PNG is lossless). A folder that already holds other
    images (another ``limit``) is refused rather than mixed or emptied. Notebooks: 08_ablations,
    09_liif_metasr, 10_seed000.
    """
    hr_set = get_dataset(name, limit=limit)
    folder = Path(root) / f"{name}-crop{side}"
    others = sorted(p.name for p in folder.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES
                    and p.stem not in hr_set.names) if folder.is_dir() else []
    if others:  # a folder scored as the set must hold exactly these crops; never delete what is there
        raise CourseError(f"{folder} already holds {len(others)} image(s) that are not among these crops (e.g. "
                          f"{others[0]}): give crop_set another root, or empty that folder")
    for i in range(len(hr_set)):
        save_image(centre_crop(hr_set[i], side), folder / f"{hr_set.names[i]}.png")
    return folder


def verify(name: str, folder=None) -> list[str]:
    """Problems of a local copy: files whose sha256 differs from the registry's, missing files, unknown images.

    A file without a known sha256 (T91's BMPs) only has to be there, in any image format. Images in the folder
    that the registry does not list are reported as unknown (datasets downloaded as one archive, DIV2K, have no
    file list: nothing is checked). Returns the problems as lines (empty: all is well). Notebook: 06_training.
    """
    info = dataset_info(name)
    folder = Path(folder) if folder else dataset_folder(name, download_missing=False)
    listed = info.files()
    present = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES) \
        if folder.is_dir() else []
    problems = []
    for filename, _, sha in listed:
        path = folder / filename
        if sha is None:
            if not any(p.stem == path.stem for p in present):
                problems.append(f"{path}: missing")
        elif not path.is_file():
            problems.append(f"{path}: missing")
        elif sha256_file(path) != sha:
            problems.append(f"{path}: sha256 differs")
    stems = {Path(filename).stem for filename, _, _ in listed}
    problems += [f"{p}: unknown file (not in the {name} registry)" for p in present if listed and p.stem not in stems]
    return problems


def local_copy(name: str) -> Path | None:
    """The folder holding a local copy of dataset ``name`` (see :func:`dataset_folder`), or None.

    Notebook: 06_training."""
    info = dataset_info(name)
    return next((f for f in _local_folders(info) if _has_images(f, info.stems)), None)


def cli(argv=None) -> int:
    """``python -m course_lib data list | fetch NAME... | verify [NAME...]``: the dataset registry on the command line.

    ``list``: every dataset, its local copy (or where it would go) and its source; ``fetch``: download what is not
    present (nothing to do for a local copy); ``verify``: each file's sha256 against the registry (every present set
    by default); exit status 1 when a file is missing or differs. Notebook: 06_training.
    """
    import argparse

    p = argparse.ArgumentParser(prog="python -m course_lib data", description="List, fetch and verify the datasets.")
    sub = p.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="every dataset, its local copy and its source")
    fetch = sub.add_parser("fetch", help="download datasets that have no local copy")
    fetch.add_argument("names", nargs="+", metavar="NAME", help=", ".join(DATASETS))
    check = sub.add_parser("verify", help="check the sha256 of every file of local copies (all present by default)")
    check.add_argument("names", nargs="*", metavar="NAME")
    args = p.parse_args(argv)
    root = data_dir()
    if args.action == "list":
        how = "COURSE_DATA_DIR" if os.environ.get("COURSE_DATA_DIR") else "the default; set COURSE_DATA_DIR for another"
        print(f"data folder: {root} ({how})")
        for name, info in DATASETS.items():
            here = local_copy(name)
            where = f"present in {here}" if here else f"missing (fetch puts it in {root / info.folder / 'HR'})"
            print(f"  {name:<12} {info.role:<5} {where}; from {info.source}")
        return 0
    if args.action == "fetch":
        for name in args.names:
            here = local_copy(name)
            if here:
                print(f"{name}: already present in {here}")
            else:
                print(f"{name}: downloading from {dataset_info(name).source} ...", flush=True)
                print(f"{name}: {len(HRFolder(download(name)))} images in {root / dataset_info(name).folder / 'HR'}")
        return 0
    names = args.names or [n for n in DATASETS if local_copy(n) is not None]
    if not names:
        raise CourseError(f"no dataset is present under {root}; fetch one first (python -m course_lib data fetch Set5)")
    failed = False
    for name in names:
        known = sum(sha is not None for _, _, sha in dataset_info(name).files())
        problems = verify(name)
        failed |= bool(problems)
        for line in problems:
            print(f"{name}: {line}")
        if not known:
            print(f"{name}: the registry has no sha256 for its files; nothing to check")
        elif not problems:
            print(f"{name}: all {known} files match their sha256 ({dataset_folder(name, download_missing=False)})")
    return 1 if failed else 0


# ---------------------------------------------------------------------------------------------------
# A folder of HR images
# ---------------------------------------------------------------------------------------------------


class HRFolder(Dataset):
    """The images of a folder (png/jpg/bmp, sorted by name) as uint8 tensors (3, H, W).

    ``stems`` keeps only files with those names (without extension); ``limit`` the first ``limit``.
    ``names`` lists the file stems, ``paths`` the files and ``sizes`` their (H, W), read from the
    file headers without decoding. An unreadable file raises CourseError naming it; a missing or
    empty folder raises CourseError. ``cache=True`` keeps each decoded image in memory after its first
    read (training reads every image thousands of times). Notebook: 06_training.
    """

    def __init__(self, root, stems=None, limit: int | None = None, cache: bool = False):
        self.root = Path(root)
        if not self.root.is_dir():
            raise CourseError(f"image folder {self.root} does not exist; create it and put HR images in it")
        paths = sorted(p for p in self.root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if stems is not None:
            keep = set(stems)
            paths = [p for p in paths if p.stem in keep]
        if limit is not None:
            if int(limit) < 1:
                raise CourseError(f"limit must be a positive number of images, got {limit}")
            paths = paths[: int(limit)]
        if not paths:
            raise CourseError(f"image folder {self.root} holds no {'/'.join(IMAGE_SUFFIXES)} images")
        self.paths = paths
        self.names = [p.stem for p in paths]
        self._sizes = None
        self._cache = {} if cache else None

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        if not -len(self) <= i < len(self):
            raise IndexError(f"image index {i} out of range for {len(self)} images")
        if self._cache is None:
            return load_image_uint8(self.paths[i])
        i = i % len(self)
        if i not in self._cache:
            self._cache[i] = load_image_uint8(self.paths[i])
        return self._cache[i]

    @property
    def sizes(self) -> list[tuple[int, int]]:
        """(H, W) of every image, from the file headers (cached)."""
        if self._sizes is None:
            sizes = []
            for p in self.paths:
                try:
                    with Image.open(p) as im:
                        sizes.append((im.height, im.width))
                except Exception as err:  # noqa: BLE001
                    raise CourseError(f"{p} is not a readable image ({type(err).__name__})") from None
            self._sizes = sizes
        return self._sizes


class ConcatHR(Dataset):
    """Several :class:`HRFolder` s read as one (``names``, ``paths`` and ``sizes`` joined in order).

    Notebook: 06_training."""

    def __init__(self, parts):
        self.parts = list(parts)
        if not self.parts:
            raise CourseError("no training folders given; name at least one folder or dataset, e.g. T91")
        self.index = [(k, i) for k, part in enumerate(self.parts) for i in range(len(part))]
        self.paths = [p for part in self.parts for p in part.paths]
        self.names = [n for part in self.parts for n in part.names]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> torch.Tensor:
        k, j = self.index[i]
        return self.parts[k][j]

    @property
    def sizes(self) -> list[tuple[int, int]]:
        return [s for part in self.parts for s in part.sizes]


def training_images(entries=None, cache: bool = False) -> ConcatHR:
    """The HR training images of one or several folders or dataset names, in the order given.

    ``entries``: a folder, a dataset name (``"T91"``, ``"BSD200"``, ``"DIV2K-train"``), or a list of
    them; None means :data:`TRAIN_DEFAULT` (T91 + BSD200 = "291"). A name is looked up locally first
    (:func:`dataset_folder`); ``cache`` keeps decoded images in memory (:class:`HRFolder`). An entry that
    is neither raises one CourseError naming the known datasets.
    Notebook: 06_training.
    """
    if entries is None:
        entries = list(TRAIN_DEFAULT)
    elif isinstance(entries, (str, Path)):
        entries = [entries]
    parts = []
    for entry in entries:
        folder = Path(str(entry)).expanduser()
        if str(entry) in DATASETS and not folder.is_dir():
            info = dataset_info(str(entry))
            parts.append(HRFolder(dataset_folder(info.name), stems=info.stems or None, cache=cache))
        elif folder.is_dir():
            parts.append(HRFolder(folder, cache=cache))
        else:
            raise CourseError(f"training folder {str(entry)!r} does not exist and is no dataset name "
                              f"({', '.join(DATASETS)}); fix data.train_dir")
    return ConcatHR(parts)


# ---------------------------------------------------------------------------------------------------
# Training-pair samplers
# ---------------------------------------------------------------------------------------------------


def item_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """A torch.Generator seeded from (seed, epoch, index) only: the same item in any worker, any order.

    Notebook: 06_training.
    """
    digest = hashlib.blake2b(f"{int(seed)}/{int(epoch)}/{int(index)}".encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little") & (2**63 - 1))


def random_flips(lr: torch.Tensor, hr: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Independent coin flips (p = 0.5): flip along H, flip along W, transpose; the same for LR and HR.

    Notebook: 06_training.
    """
    flip_h, flip_w, transpose = (torch.rand(3, generator=g) < 0.5).tolist()
    if flip_h:
        lr, hr = lr.flip(-2), hr.flip(-2)
    if flip_w:
        lr, hr = lr.flip(-1), hr.flip(-1)
    if transpose:
        lr, hr = lr.transpose(-2, -1), hr.transpose(-2, -1)
    return lr.contiguous(), hr.contiguous()


class _PatchSampler(Dataset):
    """What both samplers share: length, epochs, per-item generators, random crops that always fit."""

    _logged: set = set()  # (dataset id, image) already reported: said once per image and process

    def __init__(self, hr_dataset, patch: int, repeat: int, seed: int, augment: bool, max_crop: int):
        if len(hr_dataset) == 0:
            raise CourseError("the HR dataset is empty; point it at a folder of images")
        if int(patch) < 1 or int(repeat) < 1:
            raise CourseError(f"patch and repeat must be >= 1, got patch={patch}, repeat={repeat}")
        self.hr, self.patch, self.repeat, self.seed = hr_dataset, int(patch), int(repeat), int(seed)
        self.augment, self.epoch = augment, 0
        sizes = getattr(hr_dataset, "sizes", None)
        self.sizes = [tuple(s) for s in sizes] if sizes is not None else None
        if self.sizes is not None and max(min(s) for s in self.sizes) < max_crop:
            big = max(self.sizes, key=min)
            raise CourseError(f"an HR crop of {max_crop} px (patch {self.patch} x top scale) exceeds every "
                              f"image (largest {big[0]}x{big[1]}); lower the patch size or the scales")

    def __len__(self) -> int:
        return len(self.hr) * self.repeat

    def set_epoch(self, epoch: int) -> None:
        """Items of another epoch use other crops, scales and flips (same epoch: same items)."""
        self.epoch = int(epoch)

    def _image(self, i: int) -> torch.Tensor:
        img = self.hr[i]
        if not isinstance(img, torch.Tensor) or img.dim() != 3 or img.shape[0] != 3:
            raise CourseError(f"item {i} must be a (3, H, W) tensor, not {getattr(img, 'shape', img)}")
        return img if img.dtype == torch.uint8 else to_uint8(img)

    def _name(self, i: int) -> str:
        names = getattr(self.hr, "names", None)
        return names[i] if names is not None else f"#{i}"

    def _crop(self, i: int, img: torch.Tensor | None, crop: int, g: torch.Generator) -> torch.Tensor:
        """A random crop x crop square of image ``i`` (a too-small image is swapped for one that fits)."""
        size = self.sizes[i] if self.sizes is not None else tuple(img.shape[-2:])
        if min(size) < crop:
            j = self._substitute(i, crop, g)
            key = (id(self.hr), i)
            if key not in _PatchSampler._logged:
                _PatchSampler._logged.add(key)
                log.info("image %s (%dx%d) is smaller than the %d px crop; using image %s (said once)",
                         self._name(i), size[0], size[1], crop, self._name(j))
            i, img = j, None
        if img is None:
            img = self._image(i)
        H, W = img.shape[-2:]
        top = int(torch.randint(0, H - crop + 1, (1,), generator=g))
        left = int(torch.randint(0, W - crop + 1, (1,), generator=g))
        return img[:, top : top + crop, left : left + crop]

    def _substitute(self, i: int, crop: int, g: torch.Generator) -> int:
        """Another image, drawn with the item's generator, that holds a crop x crop square."""
        order = torch.randperm(len(self.hr), generator=g).tolist()
        for j in order:
            size = self.sizes[j] if self.sizes is not None else tuple(self._image(j).shape[-2:])
            if min(size) >= crop:
                return j
        raise CourseError(f"no image holds a {crop} px crop (image {self._name(i)} was too small); "
                          "lower the patch size or the scale")


class MultiScalePatches(_PatchSampler):
    """The DIINN authors' training pairs: item i -> [(lr, hr) for each scale] (float in [0, 1]).

    For each scale s, independently: a random round(patch * s) square crop of HR image
    ``i % len(hr_dataset)``, LR = :func:`~course_lib.degrade.bicubic_aa` of the uint8 crop to
    patch x patch (rounded to uint8), then random flips/transpose shared by LR and HR. The default
    collate turns a batch into ``[[lr (B,3,p,p), hr (B,3,ps,ps)], ...]``, one pair per scale.
    ``hr_dataset`` returns uint8 (3, H, W) (an :class:`HRFolder`). ``degrade``: the LR kernels, one drawn per
    patch with the item's generator (:func:`~course_lib.degrade.random_resample`; ``"random"`` = all five, 004's
    general resampling); the default ``("bicubic",)`` draws nothing and gives the pairs above. Notebook: 06_training.
    """

    def __init__(self, hr_dataset, scales=(2, 3, 4), patch: int = 48, repeat: int = 1, seed: int = 0,
                 augment: bool = True, degrade=("bicubic",)):
        self.kernels = check_kernels(degrade)
        self.scales = tuple(check_scale(s, "scale", minimum=1.0) for s in scales)
        if not self.scales:
            raise CourseError("scales must hold at least one scale, e.g. (2, 3, 4)")
        super().__init__(hr_dataset, patch, repeat, seed, augment, max(round(patch * s) for s in self.scales))

    def __getitem__(self, index: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        g = item_generator(self.seed, self.epoch, index)
        i = index % len(self.hr)
        img = self._image(i) if self.sizes is None or any(min(self.sizes[i]) >= round(self.patch * s)
                                                         for s in self.scales) else None
        pairs = []
        for s in self.scales:
            hr = self._crop(i, img, round(self.patch * s), g)
            lr = random_resample(hr, size=(self.patch, self.patch), kernels=self.kernels, generator=g)
            if self.augment:
                lr, hr = random_flips(lr, hr, g)
            pairs.append((lr.float() / 255.0, hr.float() / 255.0))
        return pairs


class LIIFPatches(_PatchSampler):
    """LIIF's training items: one random real scale per item and ``sample_q`` random HR query pixels.

    s ~ U(scale_min, scale_max); a random round(patch * s) square crop; LR = ``bicubic_aa`` of the
    uint8 crop to patch x patch; random flips/transpose; then ``sample_q`` HR pixels drawn without
    replacement (all of them when ``sample_q`` is None). Returns a dict: ``lr`` (3, p, p), ``coord``
    (Q, 2) pixel centres (row, col) in [-1, 1], ``cell`` (Q, 2) = (2/H, 2/W) of the crop, ``gt``
    (Q, 3), all float ([0, 1] for images). ``degrade`` as in :class:`MultiScalePatches` (default: bicubic only).
    Notebook: 06_training.
    """

    def __init__(self, hr_dataset, scale_min: float = 1.0, scale_max: float = 4.0, patch: int = 48,
                 sample_q: int | None = 2304, repeat: int = 1, seed: int = 0, augment: bool = True,
                 degrade=("bicubic",)):
        self.kernels = check_kernels(degrade)
        self.scale_min = check_scale(scale_min, "scale_min", minimum=1.0)
        self.scale_max = check_scale(scale_max, "scale_max", minimum=1.0)
        if self.scale_max < self.scale_min:
            raise CourseError(f"need scale_min <= scale_max, got {self.scale_min:g} > {self.scale_max:g}")
        smallest = round(patch * self.scale_min) ** 2
        if sample_q is not None and not 1 <= int(sample_q) <= smallest:
            raise CourseError(f"sample_q must be between 1 and {smallest} (the pixels of the smallest crop), "
                              f"got {sample_q}")
        self.sample_q = None if sample_q is None else int(sample_q)
        super().__init__(hr_dataset, patch, repeat, seed, augment, round(patch * self.scale_max))

    def __getitem__(self, index: int) -> dict:
        g = item_generator(self.seed, self.epoch, index)
        s = self.scale_min + (self.scale_max - self.scale_min) * float(torch.rand(1, generator=g))
        crop = round(self.patch * s)
        i = index % len(self.hr)
        hr = self._crop(i, None if self.sizes is not None else self._image(i), crop, g)
        lr = random_resample(hr, size=(self.patch, self.patch), kernels=self.kernels, generator=g)
        if self.augment:
            lr, hr = random_flips(lr, hr, g)
        n = crop * crop
        idx = torch.arange(n) if self.sample_q is None else torch.randperm(n, generator=g)[: self.sample_q]
        rows, cols = idx // crop, idx % crop
        coord = torch.stack([-1 + (2 * rows + 1) / crop, -1 + (2 * cols + 1) / crop], dim=-1).float()
        cell = torch.full((len(idx), 2), 2.0 / crop)
        gt = hr.reshape(3, -1)[:, idx].t().float() / 255.0
        return {"lr": lr.float() / 255.0, "coord": coord, "cell": cell, "gt": gt}
