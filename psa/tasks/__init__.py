"""What each trainable stage hands the engine: a `TaskSpec` builder (model, data, loss,
previews). Which builder trains which step is the stage registry's (psa/stages/registry.py)."""
