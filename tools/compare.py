"""`psa compare` (psa/cli/compare.py): python tools/compare.py runs/msrc_s0 runs/msrc_s1 runs/msrc_s2"""
from psa.cli.main import tool; tool("compare")
