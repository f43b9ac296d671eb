"""Phone CPU clusters: names such as ``cortex-a78x4`` or ``cortex-x3+a715x2``, and their latency from counts.

A cluster name lists core groups joined by ``+``; each group is a core profile of :mod:`darkc.latency.arm`
(``cortex-`` may be left out after the first), optionally its clock in GHz (``@2.84``, default the profile's) and
its count (``x3``, default 1): ``cortex-a76@2.84+a76@2.42x3`` is Snapdragon 855's big cluster (Pixel 4). A bare
profile name (``cortex-a78``) is a one-core cluster.

Time model (:func:`cluster_ms`). The counting plugin splits each inference's instructions into serial work S (the
calling thread outside the thread pool's parallel regions: the interpreter, operators that are not parallelised)
and parallel work P (every thread inside ``pthreadpool_parallelize``, one region per parallel operator); the
critical path is S on one core plus each region's work spread over the cluster. XNNPACK cuts a parallel operator
into many tiles that the pool's threads share and steal, so the region ends when its work is spread in proportion
to the cores' speeds; the calling thread, which runs S, sits on the fastest core (Android's scheduler keeps a
busy thread on the biggest core). Hence ``t = S / v_fastest + P / sum(v)`` over the cores in use, v = IPC x clock.
On n identical cores that is ``(S + P / n) / v``. The emulated split of a region between threads is not used: it
follows how this host scheduled the guest threads (a worker that wakes late leaves its tiles to the others), not
how a phone would. A synchronisation term ``s`` per parallel region (waking the pool and joining it) and a DRAM
term (the graph's tensor bytes over the SoC's published bandwidth, times a fitted multiplier) are added when the
validation (benchmarks/validate_estimator.py) fitted them; they are 0 otherwise.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from darkc.errors import DarkcError
from darkc.latency.arm import PROFILES, CoreProfile

_GROUP = re.compile(r"^(?P<core>(?:cortex-)?[a-z]\d+)(?:@(?P<ghz>\d+(?:\.\d+)?))?(?:x(?P<n>\d+))?$")


@dataclass(frozen=True)
class Core:
    profile: CoreProfile
    clock_ghz: float

    @property
    def speed(self) -> float:
        """Instructions per second this core retires (assumed IPC x clock)."""
        return self.profile.ipc * self.clock_ghz * 1e9


@dataclass(frozen=True)
class Cluster:
    """Cores a multi-threaded inference runs on, fastest first."""

    name: str
    cores: tuple[Core, ...]

    @property
    def size(self) -> int:
        return len(self.cores)

    @property
    def qemu_cpu(self) -> str:
        """The emulated CPU to count on: the fastest core's (its ISA picks XNNPACK's micro-kernels)."""
        return self.cores[0].profile.qemu_cpu

    @property
    def heterogeneous(self) -> bool:
        return len({(c.profile.name, c.clock_ghz) for c in self.cores}) > 1

    def describe(self) -> str:
        groups: dict[tuple[str, float], int] = {}
        for c in self.cores:
            groups[(c.profile.name, c.clock_ghz)] = groups.get((c.profile.name, c.clock_ghz), 0) + 1
        return " + ".join(f"{n} x {name} @ {ghz:g} GHz" for (name, ghz), n in groups.items())


def is_cluster_name(name: str) -> bool:
    """Whether ``name`` parses as a cluster (a bare core profile name does too)."""
    try:
        parse_cluster(name)
    except DarkcError:
        return False
    return True


def parse_cluster(name: str) -> Cluster:
    """``cortex-x3+a715x2`` -> :class:`Cluster`; a DarkcError naming the bad part and the known cores."""
    text = name.strip().lower()
    if not text:
        raise DarkcError("empty ARM cluster name; use e.g. cortex-a78x4 or cortex-x3+a715x2")
    if not text.startswith("cortex-"):
        raise DarkcError(f"--device {name}: an ARM cluster starts with a core profile name (cortex-...); e.g. "
                         f"cortex-a78x4 or cortex-x3+a715x2")
    cores: list[Core] = []
    for part in text.split("+"):
        m = _GROUP.match(part)
        core = None if m is None else m["core"] if m["core"].startswith("cortex-") else f"cortex-{m['core']}"
        if m is None or core not in PROFILES:
            raise DarkcError(f"--device {name}: {part!r} is not a core group; write CORE[@GHz][xN] joined by '+', "
                             f"CORE one of {', '.join(PROFILES)} (e.g. cortex-a78x4, cortex-x3+a715x2)")
        n = int(m["n"] or 1)
        if not 1 <= n <= 16:
            raise DarkcError(f"--device {name}: {part!r} asks for {n} cores; use 1 to 16 per group")
        profile = PROFILES[core]
        ghz = float(m["ghz"]) if m["ghz"] else profile.clock_ghz
        if not 0.1 <= ghz <= 6.0:
            raise DarkcError(f"--device {name}: clock {ghz} GHz is outside 0.1-6 GHz")
        cores += [Core(profile, ghz)] * n
    cores.sort(key=lambda c: -c.speed)
    return Cluster(text, tuple(cores))


def cluster_ms(count: dict, cluster: Cluster, *, ipc_scale: float = 1.0, sync_us: float = 0.0,
               dram_bytes: float = 0.0, dram_scale: float = 0.0) -> dict:
    """Latency (ms) of one inference from :func:`darkc.latency.arm.count_instructions` output on ``cluster``.

    ``count`` needs ``threads`` and ``serial`` + ``parallel`` (or only ``critical_path``, taken as serial); a count
    with more threads than the cluster has cores is refused (the model assumes one thread per core).
    ``ipc_scale`` multiplies every core's assumed IPC, ``sync_us`` is the cost of one parallel region and
    ``dram_scale`` x ``dram_bytes`` / the SoC's DRAM bandwidth adds memory time: all fitted by the validation.

    Returns ``{"ms", "serial_ms" (S / fastest core), "parallel_ms" (P / cores in use), "sync_ms", "dram_ms"}``.
    """
    threads = int(count.get("threads", 1))
    if threads > cluster.size:
        raise DarkcError(f"{threads} threads on {cluster.name} ({cluster.size} cores): pass --threads up to "
                         f"{cluster.size}, or name a larger cluster (e.g. {cluster.cores[0].profile.name}x{threads})")
    used = cluster.cores[:threads]
    serial = count["serial"] if "serial" in count else count["critical_path"]
    parallel = count.get("parallel", 0.0) if "serial" in count else 0.0
    serial_s = serial / (used[0].speed * ipc_scale)
    parallel_s = parallel / (sum(c.speed for c in used) * ipc_scale)
    sync = count.get("regions", 0) * sync_us * 1e-6 if threads > 1 else 0.0
    dram = dram_scale * dram_bytes / (used[0].profile.dram_gbs * 1e9)
    return {"ms": (serial_s + parallel_s + sync + dram) * 1e3, "serial_ms": serial_s * 1e3,
            "parallel_ms": parallel_s * 1e3, "sync_ms": sync * 1e3, "dram_ms": dram * 1e3}
