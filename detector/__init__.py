"""logo-detector: find brand logos in photos and say where they are."""

from __future__ import annotations

__version__ = "0.1.0"
