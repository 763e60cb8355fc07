"""The accelerator's registers by name, read from the ``registers`` section of its manifest.

The host driver, the fast-harness runner and the cocotb testbench all address registers through
this one class, so nothing outside the generated register map knows an offset.
"""


class Registers:
    """Offsets and fields of the registers of one accelerator (the manifest's ``registers`` section)."""

    def __init__(self, manifest: dict):
        self.map = {reg["name"]: reg for reg in manifest["registers"]["registers"]}

    def offset(self, name: str) -> int:
        return self.map[name]["offset"]

    def field(self, register: str, name: str) -> tuple[int, int]:
        """``(lsb, width)`` of a field."""
        for f in self.map[register]["fields"]:
            if f["name"] == name:
                return f["lsb"], f["width"]
        raise KeyError(f"{register}.{name}")

    def extract(self, value: int, register: str, name: str) -> int:
        lsb, width = self.field(register, name)
        return (value >> lsb) & ((1 << width) - 1)

    def counters(self) -> list[str]:
        """The 64-bit read-only registers (the performance counters), in map order."""
        return [name for name, reg in self.map.items()
                if reg["width"] == 64 and all(f["sw"] == "r" for f in reg["fields"])]
