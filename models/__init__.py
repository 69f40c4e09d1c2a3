"""Runtimes for exported graphs and the model-agnostic interfaces (tracker, grounder, captioner)."""
