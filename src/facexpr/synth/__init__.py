"""facexpr.synth"""
