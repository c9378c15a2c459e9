"""`psa walk` (psa/cli/walk.py): python tools/random_walk.py recipes/affinity.yaml"""
from psa.cli.main import tool; tool("walk")
