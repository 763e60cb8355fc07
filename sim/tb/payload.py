"""Pack and unpack stream payloads using the layout recorded in ``manifest.json``."""


class PayloadCodec:
    """Converts between ``{field: value or [values]}`` and the payload port's integer.

    ``fields`` is the manifest's list of leaf fields: ``name``, ``offset``,
    ``width``, ``signed`` and, for arrays, ``count`` and ``stride``.
    """

    def __init__(self, payload: dict):
        self.width = payload["width"]
        self.fields = payload["fields"]

    def pack(self, values: dict) -> int:
        word = 0
        for f in self.fields:
            mask = (1 << f["width"]) - 1
            if "count" in f:
                items = values[f["name"]]
                if len(items) != f["count"]:
                    raise ValueError(f"field {f['name']}: need {f['count']} values, got {len(items)}")
                for index, item in enumerate(items):
                    word |= (int(item) & mask) << (f["offset"] + index * f["stride"])
            else:
                word |= (int(values[f["name"]]) & mask) << f["offset"]
        return word

    def unpack(self, word: int) -> dict:
        values = {}
        for f in self.fields:
            if "count" in f:
                values[f["name"]] = [
                    self._field(word, f["offset"] + index * f["stride"], f["width"], f["signed"])
                    for index in range(f["count"])
                ]
            else:
                values[f["name"]] = self._field(word, f["offset"], f["width"], f["signed"])
        return values

    @staticmethod
    def _field(word: int, offset: int, width: int, signed: bool) -> int:
        value = (word >> offset) & ((1 << width) - 1)
        if signed and value >> (width - 1):
            value -= 1 << width
        return value
