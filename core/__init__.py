"""The shared core: what every other package may import, and which imports none of them.

Arrows run one way: ``runner -> proxy, vault, sandbox -> core``.
"""
