"""One LightningDataModule per data set, with the papers' preprocessing."""

from quantsurvey.data.registry import create_datamodule, list_datasets

__all__ = ["create_datamodule", "list_datasets"]
