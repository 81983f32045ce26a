"""A run folder's state on disk (config, loss tables, model.keras stamped with its epoch), read and committed safely.

An epoch commits in one order: config.json, the loss tables (rows keyed by epoch, so a replayed epoch replaces
its row), then model.keras, renamed into place with weights, optimizer state and an epoch stamp inside the
one archive. The rename is the commit: a kill at any instant leaves a folder that resumes at the stamped epoch.
--overwrite keeps the old run aside until the new run's first commit (pixelcnn_tf.run.aside); readers find it there.
Everything here is TensorFlow-free, so train.py, export, evaluate and generate check paths before importing it.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
import zipfile

from pixelcnn_tf.config import CONFIG_FILE, ModelConfig, TrainConfig, load_config, to_dict
from pixelcnn_tf.errors import UserError
from pixelcnn_tf.files import replacing, temporary_name, write_json_atomic
from pixelcnn_tf.run.aside import (  # noqa: F401  (the file names are re-exported)
    ASIDE,
    BOARD_DIR,
    LOCK_FILE,
    MODEL_FILE,
    has_aside,
    move_aside,
    readable_run,
    remove,
    settle_aside,
)
from pixelcnn_tf.run.losses import PLOT_TMP, TABLE_FILES, read_rows, with_row, write_tables

MODEL_TMP = "model.tmp.keras"
STAMP = "pixelcnn_tf_run.json"  # an extra entry in the .keras archive: {"epoch": N, "model": {...}}; Keras ignores it
RUN_FILES = (CONFIG_FILE, MODEL_FILE) + TABLE_FILES
TEMPORARIES = (MODEL_TMP, PLOT_TMP) + tuple(os.path.basename(temporary_name(name)) for name in RUN_FILES)
KNOWN = set(RUN_FILES) | set(TEMPORARIES) | {LOCK_FILE, BOARD_DIR, ASIDE, "backup"}  # backup/: Keras' BackupAndRestore in older runs


def is_run_dir(path: str) -> bool:
    return os.path.isfile(os.path.join(path, MODEL_FILE)) and os.path.isfile(os.path.join(path, CONFIG_FILE))


def find_run_dir(path: str | None, default_root: str = "models") -> str:
    """A run directory from a run dir, a model.keras file, or a folder of runs (newest wins).

    A run folder an --overwrite was killed in (or is replacing right now) gives its complete run: run_aside.readable_run.
    """
    target = path or default_root
    if os.path.basename(target) == MODEL_FILE and has_aside(os.path.dirname(os.path.abspath(target))):
        target = os.path.dirname(os.path.abspath(target))  # RUN/model.keras, moved aside by an --overwrite
    if os.path.isfile(target):
        if not target.endswith(".keras"):
            raise UserError(f"{target} is not a .keras checkpoint")
        target = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(target):
        raise UserError(f"checkpoint {target} does not exist; train one with `python train.py` or pass --checkpoint")
    target = readable_run(target)
    if is_run_dir(target):
        return target
    try:
        runs = [os.path.join(target, name) for name in os.listdir(target)]
    except OSError as e:
        raise UserError(f"cannot read {target}: {e.strerror}") from None
    runs = [readable_run(run) for run in runs if os.path.isdir(run)]
    runs = [run for run in runs if is_run_dir(run)]
    if not runs:
        raise UserError(f"no checkpoint ({MODEL_FILE} + {CONFIG_FILE}) in {target}; train one with `python train.py`")
    return max(runs, key=lambda run: os.path.getmtime(os.path.join(run, MODEL_FILE)))


def read_stamp(model_path: str) -> dict | None:
    """The epoch stamp of a model.keras (None for a checkpoint written before stamps); a damaged archive is refused."""
    try:
        with zipfile.ZipFile(model_path) as archive:
            names = set(archive.namelist())
            broken = archive.testzip()
            stamp = json.loads(archive.read(STAMP)) if STAMP in names else None
    except (zipfile.BadZipFile, EOFError, ValueError, OSError) as e:
        raise UserError(f"{model_path} is damaged (not a readable .keras archive: {e}); retrain it or restore a copy") from None
    if broken or not {"config.json", "model.weights.h5"} <= names:
        raise UserError(f"{model_path} is damaged ({f'bad data in {broken}' if broken else 'parts missing'}); retrain it or restore a copy")
    return stamp


def write_checkpoint(model, path: str, stamp: dict | None, epoch: int | None = None) -> None:
    """model.save (weights and optimizer state) to model.tmp.keras, add the stamp, then rename over path."""
    with replacing(path, os.path.join(os.path.dirname(path), MODEL_TMP), epoch) as tmp:
        model.save(tmp)
        if stamp is not None:
            with zipfile.ZipFile(tmp, "a") as archive:
                archive.writestr(STAMP, json.dumps(stamp))


def config_differences(old: dict, new: dict) -> list[str]:
    return [f"{key} {old.get(key)!r} -> {new.get(key)!r}" for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]


def stamped_model(stamp: dict) -> dict:
    """The model config stamped into a checkpoint; a setting newer than it (output, mixtures) had its default."""
    return {**to_dict(ModelConfig()), **stamp["model"]}


def check_model_matches(stamp: dict | None, config: TrainConfig, where: str) -> None:
    """The whole model config stamped into a checkpoint must equal its config.json's (stamp-less checkpoints: see Keras)."""
    if stamp and "model" in stamp:
        differences = config_differences(stamped_model(stamp), to_dict(config.model))
        if differences:
            raise UserError(f"checkpoint {where} does not match its {CONFIG_FILE}: {', '.join(differences)}")


def inspect_checkpoint(path: str | None, default_root: str = "models") -> tuple[str, TrainConfig, dict | None]:
    """(run_dir, config, stamp) of a checkpoint after every check that needs no TensorFlow."""
    run_dir = find_run_dir(path, default_root)
    config = load_config(run_dir)
    stamp = read_stamp(os.path.join(run_dir, MODEL_FILE))
    check_model_matches(stamp, config, run_dir)
    return run_dir, config, stamp


def check_averaged(config: TrainConfig, run_dir: str) -> None:
    """Raw weights exist apart from the saved ones only in a run trained with weight averaging."""
    if not config.ema_decay:
        raise UserError(f"{run_dir} was trained without --ema-decay: its saved weights are the raw ones")


def missing_folders(path: str) -> list[str]:
    """The folders makedirs(path) would create, outermost first; refuses a path that runs through a file."""
    missing = []
    current = os.path.abspath(path)
    while not os.path.exists(current):
        missing.append(current)
        current = os.path.dirname(current)
    if not os.path.isdir(current):
        raise UserError(f"{current} is a file, not a folder: cannot create {path} there")
    return missing[::-1]


class RunFolder:
    """One training's hold on its run folder: what is committed there, the lock, and the one place that writes."""

    def __init__(self, config: TrainConfig):
        self.config = config
        self.path = config.run_dir
        self.epochs_done = 0
        self.config_written = False
        self.worker = False  # a non-chief worker: reads the chief's folder, never writes it
        self._lock = None
        self._created: list[str] = []

    @property
    def complete(self) -> bool:
        return self.epochs_done >= self.config.epochs

    @classmethod
    def open(cls, config: TrainConfig, overwrite: bool = False, worker: bool = False) -> "RunFolder":
        """Check the folder (refusals write nothing), then, unless the run is complete, create it, lock it and tidy it.

        worker: a non-chief worker of a multi-worker run. It makes the chief's checks and reads the epoch to resume
        at from the chief's folder (shared storage on a real cluster), but neither creates, locks nor writes it.
        """
        run = cls(config)
        if not worker and has_aside(run.path):
            run._lock_folder()  # a killed --overwrite: settle which run the folder holds before reading it
            settle_aside(run.path)
            run.close()
        run._inspect(overwrite)
        run.worker = worker
        if worker or (run.complete and not overwrite):
            return run
        run._created = missing_folders(run.path)
        run._lock_folder()
        try:
            settle_aside(run.path)  # again under the lock: another --overwrite may have been killed meanwhile
            run._inspect(overwrite)  # again under the lock: another process may have committed meanwhile
            for name in TEMPORARIES:  # a killed run's leftovers; under the lock no live process owns them
                remove(os.path.join(run.path, name))
            if overwrite:
                move_aside(run.path)
                run.epochs_done = 0
        except BaseException:
            run.abandon()
            raise
        return run

    def _lock_folder(self) -> None:
        try:
            os.makedirs(self.path, exist_ok=True)
            self._lock = open(os.path.join(self.path, LOCK_FILE), "a")
        except OSError as e:
            self.abandon()
            raise UserError(f"cannot write the run folder {self.path}: {e.strerror or e}") from None
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            self._lock = None
            raise UserError(f"another training is writing to {self.path}; wait for it to end or choose another --run-name") from None

    def _inspect(self, overwrite: bool) -> None:
        """Read what the folder holds; refuse a folder that is not a run, or a run of another model."""
        path = self.path
        if not os.path.lexists(path):
            missing_folders(path)
            return
        if not os.path.isdir(path):
            raise UserError(f"run folder {path} is a file; choose another --run-name or --save-path")
        try:
            foreign = sorted(set(os.listdir(path)) - KNOWN)
        except OSError as e:
            raise UserError(f"cannot read the run folder {path}: {e.strerror}") from None
        if foreign:
            raise UserError(f"{path} exists and is not a run folder (it holds {foreign[0]}); choose another --run-name")
        if overwrite:
            return
        config_path, model_path = os.path.join(path, CONFIG_FILE), os.path.join(path, MODEL_FILE)
        stamp = read_stamp(model_path) if os.path.exists(model_path) else None
        if os.path.exists(config_path):
            old = load_config(path)
            before = stamped_model(stamp) if stamp and "model" in stamp else to_dict(old.model)
            # The optimizer's state is part of a run too: with or without averages it is another set of variables.
            before.update(dataset=old.dataset, ema_decay=old.ema_decay)
            now = dict(to_dict(self.config.model), dataset=self.config.dataset, ema_decay=self.config.ema_decay)
            differences = config_differences(before, now)
            if differences:
                raise UserError(
                    f"{path} holds a run of another model ({', '.join(differences)}); "
                    "use the same settings, another --run-name, or --overwrite"
                )
        if os.path.exists(model_path):
            if stamp is None:
                rows = read_rows(os.path.join(path, "losses.csv"))
                if not rows:
                    raise UserError(f"{model_path} records no epoch count (an older checkpoint); pass --overwrite to retrain")
                stamp = {"epoch": max(int(row["epoch"]) for row in rows)}
            self.epochs_done = int(stamp["epoch"])

    def commit_epoch(self, model, epoch: int, row: dict) -> None:
        """Commit epoch (1-based): config.json, the loss row, then model.keras with its stamp, renamed last.

        A worker saves the model like the chief (tf.distribute's contract: saving may take part in collectives),
        into a temporary folder that it removes at once.
        """
        if self.worker:
            scratch = tempfile.mkdtemp(prefix="pixelcnn_tf_worker_")
            try:
                model.save(os.path.join(scratch, MODEL_FILE))
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            self.epochs_done = epoch
            return
        if not self.config_written:
            write_json_atomic(os.path.join(self.path, CONFIG_FILE), to_dict(self.config), epoch)
            self.config_written = True
        write_tables(self.path, with_row(self.path, row), epoch)
        write_checkpoint(model, os.path.join(self.path, MODEL_FILE), {"epoch": epoch, "model": to_dict(self.config.model)}, epoch)
        self.epochs_done = epoch
        remove(os.path.join(self.path, ASIDE))  # an --overwrite's old run: the new one has committed

    def close(self) -> None:
        """Release the lock (the lock file stays: removing it would race with a process about to take it)."""
        if self._lock:
            self._lock.close()
            self._lock = None

    def abandon_plan(self) -> dict | None:
        """What abandon() would remove, for a process that removes it once this one is dead (pixelcnn_tf.distribute.watchdog)."""
        if self.worker or self.epochs_done or not self._created:
            return None
        return {"lock": os.path.join(self.path, LOCK_FILE), "folders": list(self._created)}

    def abandon(self) -> None:
        """After a failure before any commit: restore an --overwrite's old run, remove the folders this run created."""
        if self._lock and self.epochs_done == 0 and not self.worker:
            settle_aside(self.path)
        if self.epochs_done == 0 and self._created and not self.worker:
            remove(os.path.join(self.path, LOCK_FILE))
            for folder in reversed(self._created):
                try:
                    os.rmdir(folder)
                except OSError:
                    break
        self.close()

