"""quantsurvey: reproducible re-runs of the model-compression papers of a quantization survey."""

__version__ = "0.1.0"
