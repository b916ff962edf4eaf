"""Built-in plugin: registers OML's own models components and commands (filled in by the models issue)."""
