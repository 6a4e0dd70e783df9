"""training: see the README's Layout section."""
