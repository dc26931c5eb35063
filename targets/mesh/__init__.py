"""The mesh chip class (Loihi-class chips on a board): :mod:`.chipclass` is its entry point."""
