"""qforge.gen"""
