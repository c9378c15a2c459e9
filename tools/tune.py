"""`psa tune` (psa/cli/tune.py): python tools/tune.py recipes/msrc.yaml random_walk.logt=6,7,8"""
from psa.cli.main import tool; tool("tune")
