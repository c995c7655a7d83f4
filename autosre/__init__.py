"""The AutoSRE application: the ``autosre`` command line and the composition root.

``engine`` (the pipeline) and ``webui`` (the Flask app) never import this package; it
builds their parts from the settings and puts them together (``autosre.wiring``).
"""
