"""Train under `accelerate launch` and let every rank save its own copy of the weights, so a
test can check that DDP kept the ranks identical; rank 0 also writes the steps and the
per-step losses and the process group's backend. Usage: ddp_train.py RECIPE [key=value ...]"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch  # noqa: E402
from accelerate import PartialState  # noqa: E402

from psa import load_recipe  # noqa: E402
from psa.framework.registry import REGISTRY  # noqa: E402
from psa.framework.training import train_task  # noqa: E402

captured = {}


def capturing(builder):
    def build(recipe):
        spec = builder(recipe)
        captured["model"] = spec.model
        return spec
    return build


recipe = load_recipe(sys.argv[1], sys.argv[2:])
result = train_task(recipe, recipe.task, build=capturing(REGISTRY.training_step(recipe.task).training.build))
state = PartialState()
torch.save({k: v.detach().cpu() for k, v in captured["model"].state_dict().items()},
           Path(recipe.run.dir) / f"rank{state.process_index}_of_{state.num_processes}.pt")
if state.is_main_process:
    (Path(recipe.run.dir) / f"result_of_{state.num_processes}.json").write_text(
        json.dumps({"steps": result.steps, "losses": result.losses,
                    "backend": torch.distributed.get_backend() if torch.distributed.is_initialized() else None}))
