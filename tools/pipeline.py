"""`psa pipeline` (psa/cli/pipeline.py): python tools/pipeline.py recipes/demo.yaml"""
from psa.cli.main import tool; tool("pipeline")
