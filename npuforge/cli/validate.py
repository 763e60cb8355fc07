"""``npuforge validate CONFIG``: the normalised config and its hash."""

import json

from gen.config import load_config
from sim.fault.config import is_campaign_file, load_campaign

from .args import add_config

HELP = "check a config (or a campaign) and print it normalised, with its hash"


def add_arguments(parser) -> None:
    add_config(parser)


def run(args) -> int:
    if is_campaign_file(args.config):
        from ..registry import kind_workloads

        campaign = load_campaign(args.config, workloads=kind_workloads)
        design = campaign.design
        print(json.dumps({"campaign": campaign.config.normalized(), "design": design.normalized(),
                          "design_config_hash": design.config_hash()}, indent=2, sort_keys=True))
        return 0
    cfg = load_config(args.config)
    print(json.dumps({"config": cfg.normalized(), "config_hash": cfg.config_hash()}, indent=2, sort_keys=True))
    return 0
