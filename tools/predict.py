"""`psa predict` (psa/cli/predict.py): python tools/predict.py recipes/seg.yaml --images photos/"""
from psa.cli.main import tool; tool("predict")
