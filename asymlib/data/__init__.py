"""asymlib.data"""
