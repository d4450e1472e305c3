"""facexpr.train"""
