"""`psa export` (psa/cli/export.py): python tools/export_cams.py recipes/cam.yaml"""
from psa.cli.main import tool; tool("export")
