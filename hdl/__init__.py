"""qforge.hdl"""
