"""Figures (PNG + SVG) drawn from saved run folders or plain dicts, never from a model."""

import matplotlib

matplotlib.use("Agg")  # files only, no window; set here, before any module of this package imports pyplot
