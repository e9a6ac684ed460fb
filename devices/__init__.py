"""runengine.devices"""
