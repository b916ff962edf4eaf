"""Built-in plugin: registers OML's own engine components and commands (filled in by the engine issue)."""
