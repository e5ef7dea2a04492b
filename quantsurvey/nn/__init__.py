"""Layers and model surgery that apply the compress/ algorithms to nn.Modules."""
