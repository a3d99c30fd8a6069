"""Helpers shared by test modules (importable because pyproject puts tests/ on the path)."""
