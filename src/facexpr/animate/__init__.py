"""facexpr.animate"""
