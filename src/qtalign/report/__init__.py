"""Figures and reports drawn from saved results only (never a model)."""
