"""asymlib.sr"""
