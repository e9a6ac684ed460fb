"""runengine.plans"""
