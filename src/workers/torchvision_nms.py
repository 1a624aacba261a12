"""A CPU NMS kernel for torchvision where its native ops cannot load; nothing at all where they can.

Why: the registry's torchvision 0.28.0 wheels are CUDA builds. Next to the CPU build of torch that the
platform pins, their `_C.so` fails to load (it needs the CUDA runtime), and then `import torchvision`
itself fails with "operator torchvision::nms does not exist" (its Python code registers a fake
kernel for that operator). ultralytics imports torchvision while it warms a model up and then calls
`torchvision.ops.nms` for every image. So, before torchvision is first imported, `register()` defines
the two operators torchvision expects, gives `nms` a plain CPU kernel (greedy NMS, the same algorithm
and results as torchvision's own CPU kernel), and lets `torchvision.ops` call it. On a machine with a
torchvision that matches torch, `_C.so` loads and `register()` changes nothing.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from typing import Any

_library: Any = None  # keeps the torch.library registration alive for the process


def register() -> bool:
    """Make torchvision importable and its `ops.nms` work; return True if the CPU kernel was needed."""
    global _library
    if _library is not None or "torchvision" in sys.modules or _native_ops_load():
        return False
    import torch

    _library = torch.library.Library("torchvision", "DEF")
    _library.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _library.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")  # declared, never run
    _library.impl("nms", nms, "CPU")
    import torchvision.ops.boxes

    # `ops.boxes` refuses to run any native op when `_C.so` did not load; nms is now there, and any
    # other native op still fails with torch's own "operator does not exist".
    torchvision.ops.boxes._assert_has_ops = lambda: None
    return True


def _native_ops_load() -> bool:
    """True when torchvision's compiled ops load here (or torchvision is not installed at all)."""
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return True
    import torch

    folder = Path(next(iter(spec.submodule_search_locations)))
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        library = folder / f"_C{suffix}"
        if library.exists():
            try:
                torch.ops.load_library(str(library))
            except OSError:
                return False
            return True
    return False


def nms(dets: Any, scores: Any, iou_threshold: float) -> Any:
    """Greedy NMS: indices of the kept boxes (x1, y1, x2, y2), highest score first."""
    import torch

    if dets.numel() == 0:
        return torch.empty((0,), dtype=torch.int64)
    x1, y1, x2, y2 = dets.unbind(1)
    areas = (x2 - x1) * (y2 - y1)
    order = scores.argsort(descending=True)
    keep = []
    while order.numel() > 0:
        best, rest = order[0], order[1:]
        keep.append(best)
        width = (torch.minimum(x2[best], x2[rest]) - torch.maximum(x1[best], x1[rest])).clamp(min=0)
        height = (torch.minimum(y2[best], y2[rest]) - torch.maximum(y1[best], y1[rest])).clamp(min=0)
        inter = width * height
        iou = inter / (areas[best] + areas[rest] - inter)
        order = rest[~(iou > iou_threshold)]  # as torchvision: a NaN IoU (empty boxes) suppresses nothing
    return torch.stack(keep)


__all__ = ["nms", "register"]
