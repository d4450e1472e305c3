"""facexpr.faces"""
