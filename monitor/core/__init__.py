"""The numeric core: numpy, scipy and the standard library only.

No clock, no files, no environment, no network, no global random state.
"""
