"""`psa diagnose` (psa/cli/diagnose.py): python tools/diagnose.py recipes/demo.yaml"""
from psa.cli.main import tool; tool("diagnose")
