"""`psa sweep` (psa/cli/sweep.py): python tools/sweep.py recipes/demo.yaml random_walk.beta=4,8"""
from psa.cli.main import tool; tool("sweep")
