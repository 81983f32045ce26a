"""Keras 3.15 model.fit/evaluate under MultiWorkerMirroredStrategy: two private-hook fixes (keras-team/keras#20329, #20585).

Keras 3 fails there twice: it strategy.reduce-s the first (nested) batch to build the model symbolically, which
that strategy cannot do for a dict batch; and it reduces each step's scalar logs with MEAN along axis 0, which
scalars lack. `patched` applies both for one multi-worker fit and puts Keras back after it; nothing else here
touches Keras. `check` refuses in one line a Keras whose hooks moved, before anything is patched.
"""
from __future__ import annotations

import contextlib
import importlib
import inspect

import keras
import tensorflow as tf

from pixelcnn_tf.errors import UserError

TRAINER = "keras.src.backend.tensorflow.trainer"  # private: where Keras 3.15 keeps both hooks
REDUCE, BUILD = "reduce_per_replica", "_maybe_symbolic_build"
# hook -> (its parameters, the TensorFlowTrainer methods whose code must still reach it for the patch to take effect)
HOOKS = {
    REDUCE: (("values", "strategy", "reduction"), ("make_train_function", "make_test_function")),
    BUILD: (("self", "iterator", "data_batch"), ("fit", "evaluate")),
}


def _reached_names(cls, method: str) -> set[str]:
    """The names the code of cls.method uses, following calls to cls's other methods (nested functions included)."""
    names, seen, todo = set(), set(), [method]
    while todo:
        name = todo.pop()
        function = inspect.unwrap(getattr(cls, name, None))  # fit/evaluate carry a traceback-filtering wrapper
        if name in seen or not inspect.isfunction(function):
            continue
        seen.add(name)
        codes = [function.__code__]
        while codes:
            code = codes.pop()
            names.update(code.co_names)
            codes.extend(const for const in code.co_consts if inspect.iscode(const))
        todo.extend(used for used in names if used not in seen and inspect.isfunction(getattr(cls, used, None)))
    return names


def _moved() -> list[str]:
    """What no longer matches the Keras 3.15 hooks the patches replace (empty: they can be applied)."""
    try:
        trainer = importlib.import_module(TRAINER)
    except ImportError:
        return [f"{TRAINER} is gone"]
    trainer_class = getattr(trainer, "TensorFlowTrainer", None)
    if trainer_class is None:
        return [f"{TRAINER}.TensorFlowTrainer is gone"]
    owners = {REDUCE: trainer, BUILD: trainer_class}
    problems = []
    for hook, (parameters, callers) in HOOKS.items():
        function = getattr(owners[hook], hook, None)
        try:
            found = tuple(inspect.signature(function).parameters)
        except (TypeError, ValueError):
            problems.append(f"{hook} is gone")
            continue
        if found != parameters:
            problems.append(f"{hook} takes ({', '.join(found)}), not ({', '.join(parameters)})")
        problems += [f"TensorFlowTrainer.{caller} no longer calls {hook}" for caller in callers
                     if hook not in _reached_names(trainer_class, caller)]
    return problems


def check() -> None:
    """Refuse (UserError, one line) a Keras whose private trainer hooks are not where the patches expect them."""
    problems = _moved()
    if problems:
        raise UserError(f"multi-worker training patches Keras 3.15's private trainer hooks, but in Keras {keras.__version__} "
                        f"{'; '.join(problems)}: train on one worker or install the Keras of requirements.txt")


@contextlib.contextmanager
def patched(model: keras.Model):
    """Inside the block, model.fit/evaluate work on several workers; the model and its optimizer must be built.

    Keras's trainer function and the model are restored on leaving the block, also when fit raises.
    """
    check()
    trainer = importlib.import_module(TRAINER)
    original = trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
            # The logs are metric results, the same on every replica already: a MEAN over replicas keeps them.
            return keras.tree.map_structure(lambda value: strategy.reduce("MEAN", value, axis=None), values)
        return original(values, strategy, reduction)

    trainer.reduce_per_replica = reduce_per_replica
    # Built already (functional model, optimizer built in the scope), the model has nothing left for that step.
    setattr(model, BUILD, lambda iterator=None, data_batch=None: None)
    try:
        yield
    finally:
        delattr(model, BUILD)  # the instance attribute only: the class's method shows through again
        trainer.reduce_per_replica = original
