"""qforge.fpga"""
