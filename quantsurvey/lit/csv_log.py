"""Lightning's CSV logger, written atomically.

Lightning appends to `metrics.csv` in place (and rewrites it in place when a new column
appears), so a full disk or a kill mid-write leaves a cut file. Here every save writes the whole
table (all rows so far, kept in memory: a run logs a few thousand at most) to a temporary file
and renames it into place, so the file on disk is always a complete table.
"""

from __future__ import annotations

import csv
import io
import os
from typing import Any

from pytorch_lightning.core.saving import save_hparams_to_yaml
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter

from quantsurvey.atomic_io import write_text_atomic


class AtomicExperimentWriter(ExperimentWriter):
    def __init__(self, log_dir: str) -> None:
        super().__init__(log_dir)
        self.rows: list[dict[str, Any]] = []  # everything logged, saved or not

    def save(self) -> None:
        if not self.metrics:
            return
        self._record_new_keys()
        self.rows.extend(self.metrics)
        self.metrics = []
        buffer = io.StringIO(newline="")
        writer = csv.DictWriter(buffer, fieldnames=self.metrics_keys)
        writer.writeheader()
        writer.writerows(self.rows)
        write_text_atomic(self.metrics_file_path, buffer.getvalue())

    def log_hparams(self, params: dict[str, Any]) -> None:
        self.hparams.update(params)
        path = os.path.join(self.log_dir, self.NAME_HPARAMS_FILE)
        save_hparams_to_yaml(path + ".tmp", self.hparams)
        os.replace(path + ".tmp", path)


class AtomicCSVLogger(CSVLogger):
    @property
    def experiment(self) -> AtomicExperimentWriter:
        if self._experiment is None:
            os.makedirs(self.root_dir, exist_ok=True)
            self._experiment = AtomicExperimentWriter(log_dir=self.log_dir)
        return self._experiment
