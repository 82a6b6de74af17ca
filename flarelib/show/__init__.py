"""The display floor: figures (:mod:`.plotting`) and the notebook widgets (:mod:`.widgets`).

Import the modules themselves (``from flarelib.show import plotting``); this package re-exports nothing.
"""
