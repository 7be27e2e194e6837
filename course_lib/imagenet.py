"""ImageNet feature networks for perceptual losses and metrics: VGG19 up to conv5_4, AlexNet's features.

Seed paper 004 needs two networks pretrained on ImageNet: VGG19 for SRGAN's content loss (the features after the
ReLU of conv5_4, ``vgg19().features[:36]``, 20,024,384 parameters) and AlexNet for its perceptual metric
(``alexnet().features``, 2,469,696 parameters, then a 6x6 average pool: 256 x 6 x 6 = 9,216 values). The layers
are written out here with torchvision's indices, so torchvision's weight files load into them unchanged.

**Where the weights come from** (``weights=`` of :func:`load_backbone`):

* ``"imagenet"`` (default): torchvision's file (``vgg19-dcbb9e9d.pth``, 548 MB; ``alexnet-owt-7be5be79.pth``,
  233 MB) from ``$COURSE_WEIGHTS_DIR``, else from torch's cache (``torch.hub.get_dir()/checkpoints``, where
  torchvision's weights API keeps what it downloaded), else downloaded by that API (Colab, any machine with
  internet) into the cache. A file whose name carries a hash is checked against it. Without a file and without a
  network: one CourseError saying where to put the file and where it comes from.
* a path: a ``.pth`` state dict, the whole torchvision model (``features.N.weight`` keys) or its features alone.
* ``"random"``: randomly initialised layers (seed 0), **not ImageNet**: for tests and smoke runs only. The network
  says so in its ``weights_source``, and everything that reports a number made with it carries that label.

Derived in notebooks/11_fixed_scale.ipynb.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .data import sha256_file
from .errors import CourseError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RANDOM_LABEL = "random (NOT ImageNet weights: tests and smoke runs only)"


@dataclass(frozen=True)
class Backbone:
    """One feature network: torchvision's layer list (``"M"`` = 2x2 max-pool, ``(out, k, stride, pad)`` = conv +
    ReLU, ``("P", k, stride)`` = a k x k max-pool), the weight file torchvision publishes, its weights enum."""

    name: str
    layers: tuple
    file: str
    url: str
    weights_enum: str  # torchvision.models.<this>.IMAGENET1K_V1
    size_mb: float
    purpose: str


def _vgg_layers(cfg) -> tuple:
    return tuple("M" if c == "M" else (c, 3, 1, 1) for c in cfg)


BACKBONES = {
    # features[:36]: conv1_1 .. conv5_4 with their ReLUs, without the last max-pool (index 36)
    "vgg19": Backbone("vgg19", _vgg_layers([64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
                                            512, 512, 512, 512, "M", 512, 512, 512, 512]),
                      "vgg19-dcbb9e9d.pth", "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
                      "VGG19_Weights", 548.1, "SRGAN's VGG content loss (conv5_4)"),
    "alexnet": Backbone("alexnet", ((64, 11, 4, 2), ("P", 3, 2), (192, 5, 1, 2), ("P", 3, 2), (384, 3, 1, 1),
                                    (256, 3, 1, 1), (256, 3, 1, 1), ("P", 3, 2)),
                        "alexnet-owt-7be5be79.pth", "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
                        "AlexNet_Weights", 233.1, "the AlexNet-feature metric"),
}


def build_features(name: str) -> nn.Sequential:
    """The layers of a backbone, randomly initialised (PyTorch's defaults), indexed as in torchvision.

    ``"vgg19"``: ``vgg19().features[:36]``; ``"alexnet"``: ``alexnet().features``. Notebook:
    11_fixed_scale."""
    info = _info(name)
    layers, ch = [], 3
    for spec in info.layers:
        if spec == "M":
            layers.append(nn.MaxPool2d(2, 2))
        elif spec[0] == "P":
            layers.append(nn.MaxPool2d(spec[1], spec[2]))
        else:
            out, k, stride, pad = spec
            layers += [nn.Conv2d(ch, out, k, stride, pad), nn.ReLU(inplace=True)]
            ch = out
    return nn.Sequential(*layers)


def _info(name: str) -> Backbone:
    if name not in BACKBONES:
        raise CourseError(f"unknown backbone {name!r}; choose one of: {', '.join(BACKBONES)}")
    return BACKBONES[name]


def weights_dir() -> Path | None:
    """``$COURSE_WEIGHTS_DIR`` when set (a folder holding torchvision's weight files), else None."""
    env = os.environ.get("COURSE_WEIGHTS_DIR")
    return Path(env).expanduser() if env else None


def cached_file(name: str) -> Path | None:
    """The backbone's torchvision file in ``$COURSE_WEIGHTS_DIR`` or in torch's download cache, or None.

    Notebook: 11_fixed_scale."""
    info = _info(name)
    folders = [weights_dir()] if weights_dir() is not None else []
    folders.append(Path(torch.hub.get_dir()) / "checkpoints")
    for folder in folders:
        if (folder / info.file).is_file():
            return folder / info.file
    return None


def how_to_get(name: str) -> str:
    """One sentence saying how to obtain the weights of a backbone (used in every refusal)."""
    info = _info(name)
    where = weights_dir() or "$COURSE_WEIGHTS_DIR"
    return (f"on a machine with internet (Colab) torchvision downloads it by itself; otherwise copy {info.file} "
            f"({info.size_mb:g} MB, {info.url}) into {where} (or pass weights='/path/to/{info.file}'); "
            "weights='random' gives a randomly initialised network for tests only")


def _download(name: str) -> dict:
    """torchvision's weights API: download into torch's cache (hash checked) and return the state dict."""
    import torchvision.models as tvm

    return getattr(tvm, _info(name).weights_enum).IMAGENET1K_V1.get_state_dict(progress=True, check_hash=True)


def _read_state(path: Path, name: str) -> dict:
    """A state dict from a file, its hash checked when the name carries one (torchvision's ``name-<sha256 prefix>``)."""
    if not path.is_file():
        raise CourseError(f"{name} weights file {path} does not exist; {how_to_get(name)}")
    m = re.search(r"-([a-f0-9]{8,})\.", path.name)
    if m and not sha256_file(path).startswith(m.group(1)):
        raise CourseError(f"{path} does not match the hash in its name (a damaged or partial download); delete it "
                          f"and get it again: {how_to_get(name)}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same one-line answer
        raise CourseError(f"{path} is not a readable weights file ({type(err).__name__}); {how_to_get(name)}") from None
    if not isinstance(state, dict):
        raise CourseError(f"{path} holds a {type(state).__name__}, not a state dict; {how_to_get(name)}")
    return state


def _load_into(features: nn.Sequential, state: dict, name: str, source) -> None:
    """Copy ``features.N.*`` (or bare ``N.*``) weights into ``features``, refusing missing or mis-shaped ones."""
    if any(k.startswith("features.") for k in state):
        state = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
    ref = features.state_dict()
    missing = [k for k in ref if k not in state]
    shapes = [k for k in ref if k in state and tuple(state[k].shape) != tuple(ref[k].shape)]
    if missing or shapes:
        what = f"{len(missing)} weights missing (e.g. {missing[0]})" if missing else \
            f"{shapes[0]} has shape {tuple(state[shapes[0]].shape)}, not {tuple(ref[shapes[0]].shape)}"
        raise CourseError(f"{source} is not {name}'s torchvision weights ({what}); {how_to_get(name)}")
    features.load_state_dict({k: state[k].float() for k in ref})


def load_backbone(name: str, weights="imagenet", download: bool = True, device=None) -> nn.Sequential:
    """A frozen feature network in eval mode, ``.weights_source`` saying where its weights came from.

    ``name``: ``"vgg19"`` (up to the ReLU of conv5_4) or ``"alexnet"`` (its ``features``). ``weights``:
    ``"imagenet"`` (``$COURSE_WEIGHTS_DIR``, torch's cache, then a download unless ``download=False``), a file path,
    or ``"random"`` (seed 0, not ImageNet: tests only). No weights to be had: one CourseError saying how to get
    them. Inputs are RGB normalised with :func:`imagenet_normalize`. Notebook: 11_fixed_scale."""
    info = _info(name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        features = build_features(name)
    if isinstance(weights, str) and weights == "random":
        source = RANDOM_LABEL
    elif isinstance(weights, str) and weights == "imagenet":
        path = cached_file(name)
        if path is not None:
            _load_into(features, _read_state(path, name), name, path)
            source = f"ImageNet ({path})"
        elif not download:
            raise CourseError(f"no ImageNet weights for {name} ({info.purpose}) here; {how_to_get(name)}")
        else:
            try:
                state = _download(name)
            except Exception as err:  # noqa: BLE001 - no network, HTTP error, bad hash: one line with the fix
                raise CourseError(f"no ImageNet weights for {name} ({info.purpose}) here and the download failed "
                                  f"({type(err).__name__}); {how_to_get(name)}") from None
            _load_into(features, state, name, "the downloaded file")
            source = f"ImageNet (torchvision {info.weights_enum}.IMAGENET1K_V1)"
    elif isinstance(weights, (str, Path)):
        path = Path(weights).expanduser()
        _load_into(features, _read_state(path, name), name, path)
        source = f"{path}"
    else:
        raise CourseError(f"weights must be 'imagenet', 'random' or a file path, got {weights!r}")
    features = features.to(device or "cpu").eval().requires_grad_(False)
    features.weights_source = source
    return features


def imagenet_normalize(x: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] (B, 3, H, W) -> ``(x - mean) / std`` with ImageNet's mean and std (torchvision's presets).

    Notebook: 11_fixed_scale."""
    mean = x.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = x.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std
