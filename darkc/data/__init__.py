"""Raw I/O, CFA packing, the SID dataset layout and the synthetic low-light generator."""
from .cfa import channels, pack, scale, unpack
from .profiles import PROFILES, CameraProfile, get_profile
from .raw import RawFrame, amplify, read_raw, render_raw
from .sid import SIDPair, load_pairs, ratio_from_names, read_list
from .synth import SID_RATIOS, make_pair, write_dataset

__all__ = ["channels", "pack", "scale", "unpack", "PROFILES", "CameraProfile", "get_profile", "RawFrame",
           "amplify", "read_raw", "render_raw", "SIDPair", "load_pairs", "ratio_from_names", "read_list",
           "SID_RATIOS", "make_pair", "write_dataset"]
