"""``npuforge validate CONFIG``: the normalised config and its hash."""

import json

from gen.config import load_config

from .args import add_config

HELP = "check a config and print it normalised, with its hash"


def add_arguments(parser) -> None:
    add_config(parser)


def run(args) -> int:
    cfg = load_config(args.config)
    print(json.dumps({"config": cfg.normalized(), "config_hash": cfg.config_hash()}, indent=2, sort_keys=True))
    return 0
