"""asymlib.discriminators"""
