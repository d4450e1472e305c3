"""facexpr.nn"""
