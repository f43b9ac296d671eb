"""Model compression stages. ``darkc.compress.prune``: structured channel pruning (``darkc prune``).

Ten lines of use::

    from darkc.compress.prune import prune

    report = prune("teacher", "runs/pruned-5g", target_macs="5G@1920x1080", scope="global",
                   steps=3, finetune_iters=500)
    print(report["after"]["macs"]["1920x1080"], report["after"]["psnr"])

The submodule ``prune`` is exported as a module (``darkc.compress.prune.prune(...)``), not shadowed by its
stage function; its building blocks (:mod:`darkc.compress.pruning`: the pruning itself, :mod:`darkc.compress.finetune`:
fine-tuning against the unpruned parent) are re-exported here.
"""
from darkc.compress import prune
from darkc.compress.budget import Budget, macs_budget, search_ratio
from darkc.compress.prune import parse_budget
from darkc.compress.pruning import prune_model

__all__ = ["Budget", "macs_budget", "parse_budget", "prune", "prune_model", "search_ratio"]
