"""``npuforge kinds``: what a config can describe."""

from gen.registry import KINDS

HELP = "list the hardware kinds a config can describe"


def add_arguments(parser) -> None:
    pass


def run(args) -> int:
    for kind in KINDS:
        print(f"{kind.name:10} {kind.config.summary}  (docs: {kind.doc})")
    return 0
