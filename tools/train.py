"""`psa train` (psa/cli/train.py): accelerate launch tools/train.py recipes/cam.yaml [key=value ...]"""
from psa.cli.main import tool; tool("train")
