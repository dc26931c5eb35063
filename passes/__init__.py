"""The class-neutral pass library (``nmc.passes``), one module per family of passes.

Importing this package registers nothing: :data:`nmc.passmanager.PASS_MODULES` names the module
of every pass, and a pipeline imports the modules of the passes it names
(:func:`nmc.passmanager.load_passes` imports them all).  A new pass module goes in that index.
Chip classes register their mapping passes themselves (their ``pass_modules``).
"""
