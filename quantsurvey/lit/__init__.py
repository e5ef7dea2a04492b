"""The only layer that imports Lightning (besides the data modules): module and callbacks."""
