"""qforge.sim"""
