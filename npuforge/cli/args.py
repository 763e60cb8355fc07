"""Argument types and the parser class every command shares: bad arguments are one line, exit 2."""

import argparse

from gen.errors import UsageError


class Parser(argparse.ArgumentParser):
    """argparse that reports errors as one line through :class:`UsageError`."""

    def error(self, message):
        raise UsageError(f"{self.prog}: {message}; see '{self.prog} --help'")


def int_in(low: int, high: int):
    """An argument type: a base-10 integer in ``[low, high]``."""
    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"got {text!r}; allowed: an integer from {low} to {high}")
        return value
    return parse


MIN_PROBABILITY = 0.01  # below this a run of a few jobs takes millions of cycles


def probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not MIN_PROBABILITY <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"got {text!r}; allowed: a number from {MIN_PROBABILITY} to 1")
    return value


def add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", metavar="CONFIG", help="YAML config file")


def add_program_choice(parser) -> None:
    """``--image``, ``--task``, ``--ops``: which accelerator program ``npuforge compile`` and ``run`` build."""
    parser.add_argument("--image", type=int_in(0, 1_000_000), default=0, metavar="N",
                        help="synthetic image N of the evaluation set (default 0)")
    parser.add_argument("--task", default=None, metavar="NAME", help="task whose head runs (default: the first)")
    parser.add_argument("--ops", choices=("all", "network", "linear", "rows"), default="all",
                        help="operators: all (default: every operator, each fed by its producer where the network "
                             "has one), network (the network as one chain, image to head, no golden input), "
                             "linear (the linear operators and the embedding) or rows (the LayerNorms and the "
                             "attention softmaxes)")
