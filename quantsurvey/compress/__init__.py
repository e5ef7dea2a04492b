"""The papers' algorithms as small pure tensor functions (torch, numpy, scipy only)."""
