"""Raw low-light video: synthetic clips with ground truth, temporal filters, video metrics, the video stage.

Ten lines of use::

    from darkc.video import write_clip, enhance_video

    write_clip("clip", frames=24, size=512, seed=0)          # dark DNG frames + truth + true flow
    report = enhance_video("clip", "clip.mp4", model="student", metrics="clip.json")   # fast-flow filter
    report = enhance_video("street.mp4", "out.mp4", metrics="m.json")   # ordinary video, made dark raw first
    print(report["psnr"], report["flicker"], report["warp_error"], report["fps"])

    from darkc.video import make_filter                      # the filters alone, on (H, W, C) float frames
    filt = make_filter("fast-flow", strength=0.8)
    smoothed = [filt(frame) for frame in frames]
"""
from .darken import Darkener
from .flow import DISFlow, occlusion_mask, read_flo, warp, write_flo
from .io import Sequence, VideoWriter, open_sequence, probe_video
from .metrics import NoRefScore, VideoScore, flicker, warp_error
from .process import DOMAINS, default_model, enhance_video, format_report
from .synth import MOTIONS, write_clip
from .temporal import KINDS, make_filter

__all__ = ["DISFlow", "DOMAINS", "Darkener", "KINDS", "MOTIONS", "NoRefScore", "Sequence", "VideoScore", "VideoWriter",
           "default_model",
           "enhance_video", "flicker", "format_report", "make_filter", "occlusion_mask", "open_sequence",
           "probe_video", "read_flo", "warp", "warp_error", "write_clip", "write_flo"]
