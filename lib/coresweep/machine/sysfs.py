"""Reading the files Linux exposes under a root ("/" or a captured tree): a reader that never
raises on a missing file, and the parsers of sizes, meminfo and /proc/cpuinfo."""

from __future__ import annotations

import re
from pathlib import Path

from coresweep.errors import CoresweepError
from coresweep.machine.cpulist import parse_cpulist

__all__ = ["ARM_PARTS", "SysfsReader", "is_live", "meminfo_total", "parse_cpuinfo", "size_bytes"]


class SysfsReader:
    """Read-only access to a Linux root ("/" or a captured tree laid out like it): text, the
    first integer, or a CPU list of a file; None when the file is missing or unreadable."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, p: str) -> Path:
        return self.root / p.lstrip("/")

    def text(self, p: str | Path) -> str | None:
        path = p if isinstance(p, Path) else self.path(p)
        try:
            return path.read_text(errors="replace").strip()
        except (OSError, ValueError):
            return None

    def int(self, p: str | Path) -> int | None:
        t = self.text(p)
        if t is None:
            return None
        try:
            return int(t.split()[0])
        except (ValueError, IndexError):
            return None

    def cpulist(self, p: str | Path) -> list[int] | None:
        t = self.text(p)
        if t is None:
            return None
        try:
            return sorted(parse_cpulist(t))
        except CoresweepError:
            return None


SIZE_RE = re.compile(r"^(\d+)\s*([KMG]?)", re.I)


def size_bytes(t: str | None) -> int | None:
    """Bytes of a sysfs size such as "32K" or "1024 KB"."""
    if not t:
        return None
    m = SIZE_RE.match(t.strip())
    if not m:
        return None
    mult = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}[m.group(2).upper()]
    return int(m.group(1)) * mult


def meminfo_total(text: str | None) -> int | None:
    """MemTotal of a meminfo text, in bytes."""
    if not text:
        return None
    m = re.search(r"MemTotal:\s+(\d+)\s*kB", text)
    return int(m.group(1)) * 1024 if m else None


# arm64 /proc/cpuinfo names no model: (implementer, part) -> core name, as lscpu does
ARM_PARTS = {
    (0x41, 0xD03): "Cortex-A53",
    (0x41, 0xD07): "Cortex-A57",
    (0x41, 0xD08): "Cortex-A72",
    (0x41, 0xD0B): "Cortex-A76",
    (0x41, 0xD0C): "Neoverse-N1",
    (0x41, 0xD40): "Neoverse-V1",
    (0x41, 0xD49): "Neoverse-N2",
    (0x41, 0xD4F): "Neoverse-V2",
    (0xC0, 0xAC3): "Ampere-1",
}


def parse_cpuinfo(text: str | None) -> tuple[str | None, set[str], str | None]:
    """(model name, flags, vendor) of /proc/cpuinfo; arm64 names the core from its part."""
    model = None
    flags: set[str] = set()
    vendor = None
    impl = part = None
    if not text:
        return model, flags, vendor
    for line in text.splitlines():
        key, _, val = line.partition(":")
        key = key.strip().lower()
        val = val.strip()
        if key == "model name" and model is None:
            model = val
        elif key in ("flags", "features") and not flags:
            flags = set(val.split())
        elif key == "vendor_id" and vendor is None:
            vendor = val
        elif key == "cpu implementer" and impl is None:
            impl = val
        elif key == "cpu part" and part is None:
            part = val
    if model is None and impl and part:
        try:
            key2 = (int(impl, 16), int(part, 16))
            model = ARM_PARTS.get(key2, f"ARM implementer {impl} part {part}")
        except ValueError:
            pass
    return model, flags, vendor


def is_live(root: Path) -> bool:
    """``root`` is this machine's own "/" (not a captured tree)."""
    try:
        return root.resolve() == Path("/")
    except OSError:
        return False
