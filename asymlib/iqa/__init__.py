"""asymlib.iqa"""
