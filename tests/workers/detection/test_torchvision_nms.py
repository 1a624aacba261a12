"""workers.torchvision_nms: torchvision imports and its NMS works here (a CUDA torchvision next to CPU torch)."""

import pytest
import torch

from workers import torchvision_nms


def reference_nms(boxes: torch.Tensor, scores: torch.Tensor, threshold: float) -> list[int]:
    """Greedy NMS in plain Python, as torchvision documents it."""
    order = sorted(range(len(scores)), key=lambda i: -float(scores[i]))
    keep: list[int] = []
    for i in order:
        if all(iou(boxes[i], boxes[k]) <= threshold for k in keep):
            keep.append(i)
    return keep


def iou(a: torch.Tensor, b: torch.Tensor) -> float:
    w = max(0.0, float(min(a[2], b[2]) - max(a[0], b[0])))
    h = max(0.0, float(min(a[3], b[3]) - max(a[1], b[1])))
    inter = w * h
    return inter / (float((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])) - inter)


@pytest.mark.parametrize("seed", range(5))
def test_kernel_matches_greedy_nms(seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    corners = torch.rand(200, 2, generator=generator) * 500
    sizes = torch.rand(200, 2, generator=generator) * 120 + 1
    boxes = torch.cat([corners, corners + sizes], dim=1)
    scores = torch.rand(200, generator=generator)
    assert torchvision_nms.nms(boxes, scores, 0.5).tolist() == reference_nms(boxes, scores, 0.5)


def test_empty_input() -> None:
    assert torchvision_nms.nms(torch.zeros((0, 4)), torch.zeros(0), 0.5).tolist() == []


def test_torchvision_imports_and_its_nms_runs() -> None:
    torchvision_nms.register()
    import torchvision

    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    assert torchvision.ops.nms(boxes, scores, 0.5).tolist() == [0, 2]
    assert torchvision.ops.batched_nms(boxes, scores, torch.tensor([0, 1, 0]), 0.5).tolist() == [0, 1, 2]
    assert torchvision_nms.register() is False  # once is enough; torchvision is imported now
