"""facexpr.analyze"""
