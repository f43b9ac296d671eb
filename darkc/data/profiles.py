"""Named camera profiles for the synthetic sensor: levels, colour matrix and the noise model.

The noise model follows Wei et al. 2020 (ELD, "A Physics-based Noise Formation Model for Extreme
Low-light Raw Denoising"): for system gain K (DN per electron, set by ISO)

    raw = K * Poisson(signal_e) + N(0, sigma_read^2) + row offset N(0, sigma_row^2) + black, quantised

with log(sigma_read) = a_read * log(K) + b_read and log(sigma_row) = a_row * log(K) + b_row (DN).
The figures are "<camera>-like" choices in the range ELD (and, for phones, PMRID) report for such sensors,
not a calibration of any one camera. Colour matrices (XYZ -> camera, D65, as DNG ColorMatrix1) are the
published Adobe DNG Converter matrices of the named cameras as carried in dcraw's ``adobe_coeff`` table
(also in LibRaw), divided by 10000.

Sensor diversity (what a camera-agnostic model trains on): :data:`TRAIN_POOL` lists, per CFA, profiles that
span 10-, 12- and 14-bit black/white levels, normalised system gain K / (white - black) from about 3e-5 to
9e-4 per electron, read noise from 1 to 30 DN at their bit depth, and white-balance gains from tungsten-like
to shade-like. :data:`OOD_PROFILE` is one whole Bayer sensor held out of training (``darkc synth --split
ood``): a colour matrix no training profile uses, a black level (2048 DN) and white level outside the
training levels, read noise and gains above the training ranges and a wider white balance.
"""
from __future__ import annotations

from ..errors import DarkcError
from .camera_profile import CameraProfile
from .profile_file import is_profile_path, read_profile


def _matrix(*dcraw: int) -> tuple:
    """dcraw's ``adobe_coeff`` integers (XYZ -> camera x 10000) as ColorMatrix1 floats."""
    return tuple(v / 10000.0 for v in dcraw)


def _profile(name: str, cfa: str, bits: int, black: int, white: int, matrix: tuple, gain: tuple, read: tuple,
             row: tuple, model: str, **kw) -> CameraProfile:
    """A profile from the read/row noise fits ``(a, b)``: log(sigma) = a * log(K) + b, sigma in DN."""
    return CameraProfile(name=name, cfa=cfa, bit_depth=bits, black=black, white=white, xyz_to_cam=matrix,
                         gain_range=gain, a_read=read[0], b_read=read[1], a_row=row[0], b_row=row[1],
                         model=model, **kw)


PROFILES: dict[str, CameraProfile] = {p.name: p for p in (
    # --- the project's first two sensors (the reference validation sets use them) -------------------------
    _profile("sony-a7s2-like", "bayer", 14, 512, 16383,
             _matrix(5838, -1430, -246, -3497, 11477, 2297, -748, 1885, 5778),    # Sony ILCE-7S
             (0.8, 12.0), (0.85, 0.75), (0.8, -1.6), "Sony-like 14-bit (synthetic)"),
    _profile("fuji-xt2-like", "xtrans", 14, 1024, 16383,
             _matrix(11434, -4948, -1210, -3746, 12042, 1903, -666, 1479, 5235),  # Fujifilm X-Pro2 / X-T2
             (0.8, 12.0), (0.8, 0.9), (0.8, -1.4), "Fuji-like 14-bit X-Trans (synthetic)",
             red_gain=(1.6, 2.2), blue_gain=(1.4, 2.0)),
    # --- Bayer training pool: full frame, APS-C, four-thirds, 1-inch and phone-class sensors ---------------
    _profile("nikon-d810-like", "bayer", 14, 600, 15520,
             _matrix(9369, -3195, -791, -4488, 12430, 2301, -893, 1796, 6872),    # Nikon D810
             (0.25, 6.0), (0.75, 1.0), (0.7, -1.9), "Nikon D810-like 14-bit (synthetic)",
             red_gain=(1.5, 2.6), blue_gain=(1.2, 2.0)),
    _profile("canon-6d-like", "bayer", 14, 1024, 15600,
             _matrix(7034, -804, -1014, -4420, 12564, 2058, -851, 1994, 5758),    # Canon EOS 6D
             (0.3, 8.0), (0.9, 1.4), (0.9, -0.9), "Canon 6D-like 14-bit (synthetic)",
             red_gain=(1.6, 2.5), blue_gain=(1.3, 2.1)),
    _profile("nikon-d750-like", "bayer", 14, 600, 15520,
             _matrix(9020, -2890, -715, -4535, 12436, 2348, -934, 1919, 7086),    # Nikon D750
             (0.3, 10.0), (0.8, 0.9), (0.75, -1.7), "Nikon D750-like 14-bit (synthetic)",
             red_gain=(1.5, 2.4), blue_gain=(1.2, 1.9)),
    _profile("olympus-em1-like", "bayer", 12, 256, 4095,
             _matrix(7687, -1984, -606, -4327, 11928, 2721, -1381, 2339, 6452),   # Olympus E-M1
             (0.1, 2.4), (0.85, 0.9), (0.8, -1.3), "Olympus E-M1-like 12-bit (synthetic)",
             red_gain=(1.6, 2.6), blue_gain=(1.2, 2.0)),
    _profile("canon-g7x-like", "bayer", 12, 200, 4095,
             _matrix(9602, -3823, -937, -2984, 11495, 1675, -407, 1415, 5049),    # Canon PowerShot G7 X
             (0.15, 3.0), (0.8, 1.2), (0.8, -1.0), "Canon G7 X-like 12-bit 1-inch (synthetic)",
             red_gain=(1.4, 2.4), blue_gain=(1.3, 2.2)),
    _profile("nikon1-j5-like", "bayer", 12, 128, 4095,
             _matrix(7520, -2518, -645, -3844, 12102, 1945, -913, 2249, 6835),    # Nikon 1 J5
             (0.12, 3.2), (0.75, 1.1), (0.7, -1.2), "Nikon 1 J5-like 12-bit (synthetic)",
             red_gain=(1.5, 2.5), blue_gain=(1.3, 2.3)),
    _profile("phone-10bit-a-like", "bayer", 10, 64, 1023,
             _matrix(8380, -2630, -639, -2887, 10725, 2496, -627, 1427, 5438),    # Olympus E-M5 matrix
             (0.03, 0.8), (0.7, 0.6), (0.7, -1.5), "phone-class 10-bit sensor A (synthetic)",
             red_gain=(1.3, 2.6), blue_gain=(1.2, 2.4)),
    _profile("phone-10bit-b-like", "bayer", 10, 64, 1023,
             _matrix(10321, -3920, -931, -2750, 11146, 1824, -442, 1545, 5539),   # Nikon COOLPIX P7700 matrix
             (0.04, 0.7), (0.8, 0.9), (0.75, -1.2), "phone-class 10-bit sensor B (synthetic)",
             red_gain=(1.4, 2.7), blue_gain=(1.3, 2.5)),
    # --- X-Trans training pool -----------------------------------------------------------------------------
    _profile("fuji-xt1-like", "xtrans", 14, 1024, 16383,
             _matrix(8458, -2451, -855, -4597, 12447, 2407, -1475, 2482, 6526),   # Fujifilm X-T1 / X-E2
             (0.5, 10.0), (0.85, 0.8), (0.8, -1.5), "Fuji X-T1-like 14-bit X-Trans (synthetic)",
             red_gain=(1.5, 2.4), blue_gain=(1.3, 2.1)),
    _profile("fuji-xpro1-like", "xtrans", 12, 256, 4095,
             _matrix(10413, -3996, -993, -3721, 11640, 2361, -733, 1540, 6011),   # Fujifilm X-Pro1 / X-E1
             (0.12, 2.8), (0.8, 0.7), (0.8, -1.3), "Fuji X-Pro1-like 12-bit X-Trans (synthetic)",
             red_gain=(1.5, 2.5), blue_gain=(1.3, 2.2)),
    _profile("fuji-x100s-like", "xtrans", 14, 1024, 16383,
             _matrix(10592, -4262, -1008, -3514, 11355, 2465, -870, 2025, 6386),  # Fujifilm X100S / X100T
             (0.6, 11.0), (0.8, 1.0), (0.85, -1.4), "Fuji X100S-like 14-bit X-Trans (synthetic)",
             red_gain=(1.5, 2.3), blue_gain=(1.3, 2.0)),
    # --- held out of training: the out-of-distribution sensor (``darkc synth --split ood``) -------------------
    _profile("canon-5d2-ood", "bayer", 14, 2048, 15000,
             _matrix(4716, 603, -830, -7798, 15474, 2480, -1496, 1937, 6651),     # Canon EOS 5D Mark II
             (0.4, 14.0), (0.9, 1.2), (0.9, -0.8), "Canon 5D Mark II-like 14-bit, held out (synthetic)",
             red_gain=(1.3, 2.9), blue_gain=(1.1, 2.6)),
)}

#: Sensors the default synthetic training data draws from, one per sample (``darkc train`` without --profile).
TRAIN_POOL: dict[str, tuple[str, ...]] = {
    "bayer": ("sony-a7s2-like", "nikon-d810-like", "canon-6d-like", "nikon-d750-like", "olympus-em1-like",
              "canon-g7x-like", "nikon1-j5-like", "phone-10bit-a-like", "phone-10bit-b-like"),
    "xtrans": ("fuji-xt2-like", "fuji-xt1-like", "fuji-xpro1-like", "fuji-x100s-like"),
}
#: The sensor held out of every training pool: the out-of-distribution evaluation set uses it.
OOD_PROFILE = {"bayer": "canon-5d2-ood", "xtrans": None}

DEFAULT_PROFILE = {"bayer": "sony-a7s2-like", "xtrans": "fuji-xt2-like"}


def get_profile(name: str | None, cfa: str | None = None) -> CameraProfile:
    """Profile by name or TOML file (``darkc calibrate``'s output); with no name, the default profile of
    ``cfa`` (Bayer if not given)."""
    if cfa is not None and cfa not in DEFAULT_PROFILE:
        raise DarkcError(f"unknown CFA {cfa!r}: use {' or '.join(DEFAULT_PROFILE)}")
    if name is None:
        name = DEFAULT_PROFILE[cfa or "bayer"]
    if name == "pool":
        raise DarkcError(f"--profile pool names the training sensor pool; here one sensor is needed: choose one of "
                         f"{', '.join(sorted(PROFILES))}")
    if name not in PROFILES and is_profile_path(name):
        prof = read_profile(name)
    elif name not in PROFILES:
        raise DarkcError(f"unknown camera profile {name!r}: choose one of {', '.join(sorted(PROFILES))} "
                         f"or pass a profile file (.toml)")
    else:
        prof = PROFILES[name]
    if cfa is not None and prof.cfa != cfa:
        raise DarkcError(f"profile {name!r} is a {prof.cfa} sensor but --cfa {cfa} was asked for; "
                         f"use {DEFAULT_PROFILE[cfa]!r}")
    return prof


def training_profiles(name: str | None, cfa: str = "bayer", pool: bool = False) -> list[CameraProfile]:
    """The sensors synthetic training data draws from: the CFA's :data:`TRAIN_POOL` when ``pool`` (or ``name`` is
    'pool'), else the one profile ``name`` (None: the CFA's default)."""
    if pool or name == "pool":
        return [PROFILES[n] for n in TRAIN_POOL[cfa]]
    return [get_profile(name, cfa)]
