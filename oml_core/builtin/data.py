"""Built-in plugin: registers OML's own data components and commands (filled in by the data issue)."""
