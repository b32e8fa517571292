"""The engine: runs turns (gateway <-> harness <-> sandbox), journaling every step first."""
