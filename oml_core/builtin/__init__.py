"""OML's built-in behaviour, registered as plugins through the same manager as everyone else's."""
