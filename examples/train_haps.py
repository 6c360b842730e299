"""Train HAPS on real HotpotQA with the real pool; the same flags as ``routing-gym train-haps``.

    routing-gym precompute --env LLMRouting-HotpotQA-v0 --split train --limit 16 \
        --out runs/hotpotqa_train_action_table.jsonl
    python examples/train_haps.py --action-table runs/hotpotqa_train_action_table.jsonl \
        --train-limit 16 --valid-limit 24 --updates 8 --episodes-per-update 2 \
        --tensorboard-log runs/haps --out runs/haps_agent

``python examples/train_haps.py --help`` lists every flag (ablations, profiling, λ). The
command is ``agents.haps.cli``: the environments, warm-up, joint phase and scoring read top to
bottom in its ``main``.
"""

import sys

from routing_gym.cli import main

if __name__ == "__main__":
    # routing-gym's main runs agents.haps.cli and prints a bad flag as one line
    sys.exit(main(["train-haps", *sys.argv[1:]]))
