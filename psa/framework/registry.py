"""The registry: every step of every method, and what the methods provide each other.

A method's `steps` module registers its steps (`register`), the artefacts others build on
(`provide`: the CAM export, the classifier; one provider of each type) and the things the
framework lists (`add`: pseudo-mask sources, CAM training variants, diagnosis probes,
tuners, recipe checks). Everything that lists steps — the plan and its order, the names
`pipeline.steps` and `task` accept, the sources of `tools/eval.py`, the summary table, the
sweep's columns, the diagnosis — is read from here; no list of methods is written anywhere.

The pipeline's order is the steps' dependency order (`ordered`): each step after the steps
its outputs are made from, ties broken by the method's ORDER, then by registration.
"""

from __future__ import annotations

import contextlib
import difflib
import heapq
from dataclasses import dataclass
from typing import Callable, Iterator, Optional, TypeVar

from ..config import Recipe
from ..errors import PsaError
from . import methods
from .step import Step

T = TypeVar("T")


@dataclass(frozen=True)
class RecipeCheck:
    """A recipe key whose choices come from the registry (`cam.method`, `seg.masks`): `run`
    raises one PsaError line when the recipe's value is not among them."""

    name: str  # the key it checks
    run: Callable[[Recipe], None]


class Registry:
    """An ordered set of steps, plus typed providers and collections."""

    def __init__(self, loader=None):
        self._steps: list[Step] = []
        self._order: dict[str, int] = {}  # method -> its ORDER
        self._providers: dict[type, object] = {}
        self._items: dict[type, list] = {}
        self._method = ("", 100)  # the method registering now: (name, ORDER)
        self._loader = loader  # called before each look: imports the steps of methods loaded since
        self._loading = False

    # ------------------------------------------------------------------ registering

    @contextlib.contextmanager
    def registering(self, method: str, order: int):
        """What is registered inside belongs to `method` (its ORDER places its steps)."""
        previous = self._method
        self._method = (method, order)
        self._order.setdefault(method, order)
        try:
            yield
        finally:
            self._method = previous

    def register(self, step: Step) -> Step:
        if step.name in {s.name for s in self._steps}:
            raise ValueError(f"step {step.name!r} is registered twice")
        if not step.method:
            object.__setattr__(step, "method", self._method[0])
            self._order.setdefault(self._method[0], self._method[1])
        self._steps.append(step)
        return step

    def provide(self, provider: T) -> T:
        """The one provider of its type (the CAM export, the classifier)."""
        kind = type(provider)
        if kind in self._providers and self._providers[kind] is not provider:
            raise ValueError(f"a {kind.__name__} is provided twice")
        self._providers[kind] = provider
        return provider

    def add(self, item: T) -> T:
        """One more of its type (a pseudo-mask source, a CAM variant, a probe, a tuner, a check)."""
        found = self._items.setdefault(type(item), [])
        name = getattr(item, "name", None)
        if name is not None and any(getattr(other, "name", None) == name for other in found):
            raise ValueError(f"{type(item).__name__} {name!r} is registered twice")
        found.append(item)
        return item

    # ------------------------------------------------------------------ looking up

    def _ready(self) -> None:
        """Import the steps of methods loaded since the last look (not while importing them)."""
        if self._loader is not None and not self._loading:
            self._loading = True
            try:
                self._loader()
            finally:
                self._loading = False

    def __iter__(self) -> Iterator[Step]:
        self._ready()
        return iter(self._by_method())

    def names(self) -> list[str]:
        return [step.name for step in self]

    def get(self, name: str) -> Step:
        for step in self:
            if step.name == name:
                return step
        raise KeyError(name)

    def provider(self, kind: type[T]) -> T:
        self._ready()
        if kind not in self._providers:
            raise PsaError(f"no loaded method provides a {kind.__name__} (is its method's folder there?)")
        return self._providers[kind]

    def all(self, kind: type[T]) -> list[T]:
        self._ready()
        return list(self._items.get(kind, ()))

    def find(self, kind: type[T], name: str, key: str) -> T:
        """The item of `kind` called `name`, or one line naming the recipe `key` and the choices."""
        for item in self.all(kind):
            if item.name == name:
                return item
        raise PsaError(choice_message(key, name, [item.name for item in self.all(kind)]))

    def _by_method(self) -> list[Step]:
        """Registration order within a method, methods by ORDER (stable)."""
        return sorted(self._steps, key=lambda step: self._order.get(step.method, 100))

    def ordered(self, recipe: Recipe, steps: Optional[list[Step]] = None) -> list[Step]:
        """`steps` (default: all) in the order they run for this recipe: each after the steps
        its outputs are made from (upstream, followed through steps not in `steps`); among the
        steps that may run next, the first by method ORDER and registration."""
        everything = self._by_method()
        rank = {step.name: position for position, step in enumerate(everything)}
        chosen = {step.name for step in (steps if steps is not None else everything)}
        before: dict[str, set[str]] = {name: set() for name in chosen}

        def ancestors(step: Step, seen: set[str]) -> set[str]:
            found = set()
            for up in step.spec.upstream(recipe):
                if up.name in seen:
                    continue
                seen.add(up.name)
                found |= {up.name} | ancestors(up, seen)
            return found

        by_name = {step.name: step for step in everything}
        for name in chosen:
            before[name] = ancestors(by_name[name], set()) & chosen
        ready = [(rank[name], name) for name in chosen if not before[name]]
        heapq.heapify(ready)
        done: list[Step] = []
        while ready:
            _, name = heapq.heappop(ready)
            done.append(by_name[name])
            for other in chosen:
                if name in before[other]:
                    before[other].discard(name)
                    if not before[other]:
                        heapq.heappush(ready, (rank[other], other))
        if len(done) != len(chosen):  # a cycle: upstream functions that name each other
            left = sorted(chosen - {step.name for step in done})
            raise PsaError(f"the steps {', '.join(left)} are each other's upstream")
        return done

    # ------------------------------------------------------------------ derived views

    def tasks(self) -> list[str]:
        """The `task` names: one per training step."""
        return [step.task for step in self if step.training is not None and step.task]

    def training_step(self, task: str) -> Step:
        for step in self:
            if step.training is not None and step.task == task:
                return step
        raise PsaError(choice_message("task", task, self.tasks()))

    def predictor(self, task: str):
        """The network `tools/predict.py` segments with: the recipe's task's, else the first
        one the default pipeline trains (the segmentation network)."""
        found = [step for step in self if step.predicts is not None]
        for step in found:
            if step.task == task:
                return step.predicts
        defaults = [step.predicts for step in found if step.default]
        if not defaults:
            raise PsaError(f"task {task!r} has no network to predict with, and no loaded method trains one")
        return defaults[0]

    def default_steps(self) -> list[str]:
        return [step.name for step in self if step.default]

    def sources(self) -> dict:
        """{name: Predictions} of every evaluation step (what `tools/eval.py --source` takes)."""
        found: dict = {}
        for step in self:
            if step.evaluates is not None:
                found.setdefault(step.evaluates.name, step.evaluates)
        return found

    def summary_rows(self) -> list:
        """(step, SummaryRow) of every step, in registry order."""
        return [(step, row) for step in self for row in step.rows]

    def selected(self, recipe: Recipe) -> list[Step]:
        """The steps the recipe's pipeline.steps names (null: the default ones), in the order
        they run."""
        names = recipe.pipeline.steps if recipe.pipeline.steps is not None else self.default_steps()
        known = self.names()
        unknown = [name for name in names if name not in known]
        if unknown:
            raise PsaError(choice_message("pipeline.steps", unknown[0], known, what="has unknown step"))
        return self.ordered(recipe, [step for step in self if step.name in names])

    def check_recipe(self, recipe: Recipe) -> None:
        """The recipe keys whose choices are the registry's: `task`, `pipeline.steps`, and
        each method's own (`RecipeCheck`s, e.g. cam.method, seg.masks)."""
        self.training_step(recipe.task)
        self.selected(recipe)
        for check in self.all(RecipeCheck):
            check.run(recipe)


def choice_message(key: str, value: str, choices: list[str], what: str = "must be one of") -> str:
    """One line for a recipe key whose value is not among `choices`, with the closest one."""
    close = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.5)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    if what == "must be one of":
        return f"recipe key '{key}' must be one of {', '.join(choices) or '(none loaded)'}, got {value!r}{hint}"
    return f"recipe key '{key}' {what} {value!r}{hint}; steps: {', '.join(choices)}"


REGISTRY = Registry(loader=lambda: methods.import_steps(REGISTRY))
register = REGISTRY.register
