"""Local weight files (``--pretrained``): read a state dict, load the weights that fit a module.

Weights are never downloaded (no hub access here); a user gives a local file, typically a
torchvision or timm checkpoint of the backbone, whose first layer (other input channels) and
classifier (other classes) do not fit and are left at their random initialisation.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from seaice_mlflow.core.errors import ParameterError


def read_state_dict(path: str | Path, kind: str) -> Mapping[str, Tensor]:
    """The state dict in the local file ``path``, a clear error (naming ``--pretrained``) when it
    is missing or not a readable torch state dict."""
    path = Path(path)
    if not path.is_file():
        raise ParameterError("pretrained", f"{path} does not exist; give a local {kind} state dict file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle, zip and safe-unpickling errors alike
        raise ParameterError("pretrained", f"{path} is not a readable torch state dict ({err})") from None
    if not isinstance(state, Mapping):
        raise ParameterError("pretrained", f"{path} holds a {type(state).__name__}, not a {kind} state dict")
    return state


def load_fitting(module: nn.Module, path: str | Path, kind: str) -> None:
    """Load the weights of the file whose names and shapes fit ``module``; a file that fits less
    than half of the module's weights is refused (another architecture)."""
    state = read_state_dict(path, kind)
    own = module.state_dict()
    fitting = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if len(fitting) < len(own) // 2:
        raise ParameterError("pretrained", f"{path} fits {len(fitting)} of the {kind}'s {len(own)} weights; give a "
                             f"state dict of the same {kind}")  # fmt: skip
    module.load_state_dict(fitting, strict=False)
