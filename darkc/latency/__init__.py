"""Latency: measured on this host, estimated for phone-class ARM cores (emulated) and Arm Ethos-U NPUs (Vela).

    from darkc.latency import bench, format_result
    res = bench("runs/student/model-int8.tflite", devices="host,cortex-a78,ethos-u55-256", size="1920x1080")
    print(format_result(res, "md"))

- :mod:`darkc.latency.bench`: the stage (``darkc bench``), device entries and their labels;
- :mod:`darkc.latency.graph`: MACs and bytes per layer from the ONNX / TFLite / PyTorch graph;
- :mod:`darkc.latency.arm`: QEMU instruction counting, core profiles, roofline; ``setup_arm.sh`` builds the
  emulator and the aarch64 userland; ``insn_window.c`` is the counting plugin;
- :mod:`darkc.latency.npu`: Vela compile and performance estimate, the SRAM of each Ethos-U configuration;
- :mod:`darkc.latency.tiling`: the frame tiled (receptive-field halo included) so that each tile fits that SRAM;
- :mod:`darkc.latency.report`: table / markdown / JSON / PNG;
- :mod:`darkc.latency.worker`: the process that runs a model (host and emulated guest alike).
"""
from darkc.latency.bench import DEFAULT_ARM_SIZE, DEFAULT_SIZE, HOST, bench, devices_list, parse_devices
from darkc.latency.report import FORMATS, format_result, write_report

__all__ = ["DEFAULT_ARM_SIZE", "DEFAULT_SIZE", "FORMATS", "HOST", "bench", "devices_list", "format_result",
           "parse_devices", "write_report"]
