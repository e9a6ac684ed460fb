"""runengine.callbacks"""
