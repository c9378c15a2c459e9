"""Run a psa script with psa's CPU switch removed (`psa.engine.accel.use_cpu` always False),
as if Accelerate were asked for the GPU on a machine without one: a launch of N processes then
runs N lone processes, which psa must refuse. Usage: without_cpu_switch.py SCRIPT [args ...]"""

import runpy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from psa.engine import accel  # noqa: E402

accel.use_cpu = lambda: False
script = sys.argv[1]
sys.argv = sys.argv[1:]
sys.path.insert(0, str(Path(script).resolve().parent))  # as `python SCRIPT` would (tools/_path.py)
runpy.run_path(script, run_name="__main__")
