from nmc.cli import entry

entry()
