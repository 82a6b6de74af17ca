"""The cube-building floor: instruments (GOES, AIA prep), alignment, the Zarr store, the ingest, the synthetic
sun, the archives (SDOML v2, Fido/JSOC/HEK) and the data catalog: files in, an aligned ``.zarr`` cube out.

Import the modules themselves (``from flarelib.cube import store``); this package re-exports nothing.
"""
