"""The audio tests import their helpers (ecapa_random_state, audio_signals) from this folder."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # also read by bench/models/ecapa_reference.py
