"""Host cost of a PyTorch model: params, MACs at report resolutions and wall time, as the prune and distill
reports state them. Host timings depend on the machine and its load; reports say where they were taken."""
from __future__ import annotations

import statistics
import time

import torch
from torch import nn

from darkc.sizes import packed_shape

#: Raw frame sizes (W, H) the reports state MACs at: a 1080p frame and the Sony A7S II sensor of SID.
REPORT_RESOLUTIONS: tuple[tuple[int, int], ...] = ((1920, 1080), (4240, 2832))


@torch.inference_mode()
def host_latency_ms(model: nn.Module, shape: tuple[int, int, int], runs: int = 3) -> float:
    """Median wall time (ms) of ``runs`` forwards on CPU with 1 torch thread, after one warm-up,
    at the packed ``shape`` padded to the model's size multiple."""
    from darkc.models.complexity import padded_shape

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = model.eval()
        x = torch.rand(padded_shape(model, shape), generator=torch.Generator().manual_seed(0))
        model(x)
        times = []
        for _ in range(max(1, runs)):
            t0 = time.perf_counter()
            model(x)
            times.append((time.perf_counter() - t0) * 1e3)
    finally:
        torch.set_num_threads(threads)
    return statistics.median(times)


def measure(model: nn.Module, cfa: str, latency_shape, latency_runs: int, channels: int | None = None) -> dict:
    """``{"params", "macs": {"WxH": conv MACs}, "latency_ms"}``: MACs at :data:`REPORT_RESOLUTIONS` (``channels``
    input channels, default the model's ``in_channels`` attribute, else the CFA's), host latency at the packed
    ``latency_shape`` (left out when None)."""
    from darkc.models import count_macs, count_params

    channels = channels or getattr(model, "in_channels", None)
    res = {"params": count_params(model),
           "macs": {f"{w}x{h}": count_macs(model, packed_shape(cfa, (w, h), channels)) for w, h in REPORT_RESOLUTIONS}}
    if latency_shape is not None:
        res["latency_ms"] = host_latency_ms(model, latency_shape, latency_runs)
    return res


def latency_setup(model: nn.Module, resolution: tuple[int, int], shape, runs: int) -> dict:
    """How :func:`host_latency_ms` timed ``model`` for a report: the raw frame ``resolution`` (W, H), the packed
    ``shape`` padded to the model's size multiple (C, H, W), 1 thread, ``runs`` runs, the runtime."""
    from darkc.models.complexity import padded_shape

    return {"raw": f"{resolution[0]}x{resolution[1]}", "packed_padded": list(padded_shape(model, tuple(shape))[1:]),
            "threads": 1, "runs": runs, "runtime": f"torch {torch.__version__} CPU"}
