"""facexpr.cli"""
