"""asymlib.metrics"""
