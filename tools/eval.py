"""`psa eval` (psa/cli/evaluate.py): python tools/eval.py recipes/affinity.yaml --crf"""
from psa.cli.main import tool; tool("eval")
