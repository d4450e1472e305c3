"""facexpr.io"""
