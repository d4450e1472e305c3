"""facexpr.avatars"""
