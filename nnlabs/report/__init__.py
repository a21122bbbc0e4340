"""Figures and explorables, made from the files in run directories (never from live training state)."""
