"""Networks, the one builder, the checkpoint artifact and shipped models.

Ten lines of use::

    from darkc.models import build_model, save_checkpoint, load_checkpoint, count_params, count_macs

    spec = {"arch": "sid-unet", "cfa": "bayer"}           # model.json content; defaults fill the rest
    model = build_model(spec)                             # packed raw (N,4,H,W) in [0,1] -> sRGB (N,3,2H,2W)
    print(count_params(model), count_macs(model, (4, 540, 960)))   # conv MACs at the padded 4x544x960
    save_checkpoint(model, spec, "runs/teacher")          # model.safetensors + model.json, atomically
    model, spec = load_checkpoint("runs/teacher")
"""
from darkc.models.adapter import Adapter, adapter_of
from darkc.models.registry import get_adapter, size_multiple_of
from darkc.models.builder import CFAS, build_model, io_kind, normalize_spec, normalize_unet_widths
from darkc.models.checkpoint import load_checkpoint, read_spec, save_checkpoint
from darkc.models.complexity import count_macs, count_macs_by_layer, count_params
from darkc.models.pretrained import available_pretrained, load_pretrained, resolve_model_ref
from darkc.models.registry import ENTRY_POINT_GROUP, get_arch, list_archs, plugin_paths, register_arch, resolve_arch
from darkc.models.sid_unet import LAYERS, LEVELS, WIDTH_LAYERS, SIDUNet, widths_to_channels

__all__ = [
    "Adapter", "ENTRY_POINT_GROUP", "adapter_of", "get_adapter", "plugin_paths", "resolve_arch", "size_multiple_of",
    "CFAS", "LAYERS", "LEVELS", "SIDUNet", "WIDTH_LAYERS", "available_pretrained", "build_model", "count_macs",
    "count_macs_by_layer", "count_params", "get_arch", "io_kind", "list_archs", "load_checkpoint", "load_pretrained",
    "normalize_spec", "normalize_unet_widths", "read_spec", "register_arch", "resolve_model_ref",
    "save_checkpoint", "widths_to_channels",
]
