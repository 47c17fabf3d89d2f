"""The task streams: the game streams (``streams.py``: what a stream provides and the registry;
Atari, ``atari.py``, and MinAtar, ``minatar.py``; ``common.py`` what they share; ``replay.py``
training games that survive a checkpoint) and, in vision/, the supervised streams: data sets
split into tasks, with their loaders. Imports nothing from agents/, regularizers/, continual/."""
