"""qforge's stable public API (installed as ``qforge.api``; the source lives in gen/api/).

Placeholder: the functions are added by the CLI/API work of issue 13.
"""
